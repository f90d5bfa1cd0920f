"""Load a suite: parse the YAML, validate it, resolve every experiment against the defaults, and
check every cross-reference and every file it names — all problems reported together, each with
file, line and column. Nothing here reads data: files are examined, never opened."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic

from elspeth.config._checks import (
    did_you_mean,
    file_problems,
    pricing_problems,
    resolve_relative,
    schema_problems,
)
from elspeth.config._errors import SettingsError, SettingsProblem
from elspeth.config._models import (
    BudgetSettings,
    ExperimentSettings,
    RateLimitSettings,
    SuiteSettings,
    _JudgeSettings,
)
from elspeth.config._yaml import KeyPath, LoadedYaml, load_yaml
from elspeth.security import redact_secrets
from elspeth.sinks import ReportSinkSettings, SinkConfig


@dataclass(frozen=True, slots=True)
class Experiment:
    """One experiment with every default applied."""

    name: str
    baseline: bool
    model: str
    prompt_pack: str
    parameters: Mapping[str, Any]
    judges: tuple[str, ...]
    row_plugins: tuple[str, ...]
    aggregators: tuple[str, ...]
    sinks: tuple[str, ...]
    concurrency: int
    max_retries: int
    rate_limits: RateLimitSettings
    budget: BudgetSettings
    repeats: int
    max_error_rate: float


@dataclass(frozen=True, slots=True)
class Suite:
    """A validated suite: the settings, the resolved experiments, and where they came from."""

    settings: SuiteSettings
    experiments: tuple[Experiment, ...]
    file: Path
    source: LoadedYaml
    warnings: tuple[SettingsProblem, ...] = ()
    """Not errors, but worth saying at validation and at every run (a model with no price)."""

    @property
    def baseline(self) -> Experiment:
        return next(e for e in self.experiments if e.baseline)

    @property
    def comparison_sinks(self) -> tuple[str, ...]:
        defaults = self.settings.defaults
        chosen = defaults.comparison_sinks
        return tuple(chosen if chosen is not None else (defaults.sinks or ()))

    def line_of(self, path: KeyPath) -> int | None:
        return self.source.line_of(path)

    def problem(self, path: KeyPath, message: str) -> SettingsProblem:
        """A problem at the key ``path`` (its line and column), named by ``path``."""
        return self.source.problem(path, message)

    def frame_sink(self, name: str) -> SinkConfig:
        """The settings of sink ``name``, which an experiment or comparison lists."""
        sink = self.settings.sinks[name]
        if isinstance(sink, ReportSinkSettings):  # the loader refuses this already
            raise TypeError(f"sink {name!r} is a suite-level sink, not a frame sink")
        return sink

    def report_sink(self, name: str) -> ReportSinkSettings:
        """The settings of sink ``name``, which ``reports`` lists."""
        sink = self.settings.sinks[name]
        if not isinstance(sink, ReportSinkSettings):  # the loader refuses this already
            raise TypeError(f"sink {name!r} writes frames, it is not a suite-level sink")
        return sink

    def recordable_settings(self) -> dict[str, Any]:
        """The effective settings with every secret redacted: safe to write into an output."""
        dumped = self.settings.model_dump(mode="json")
        return redact_secrets(dumped, self.source.substituted)


_BUILTIN_RUN_DEFAULTS: Mapping[str, Any] = {
    "parameters": {},
    "judges": [],
    "row_plugins": [],
    "aggregators": [],
    "sinks": None,
    "concurrency": 8,
    "max_retries": 3,
    "rate_limits": RateLimitSettings(),
    "budget": BudgetSettings(),
    "repeats": 1,
    "max_error_rate": 0.0,
}


def load_suite(file: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Suite:
    """Read and validate ``file``; raise :class:`SettingsError` listing every problem."""
    path = Path(file)
    loaded = load_yaml(path, environ)
    if not isinstance(loaded.data, dict):
        raise SettingsError([SettingsProblem(path, 1, "", "the settings must be a mapping", 1)])
    # Relative paths are relative to the settings file's directory, never the working directory.
    base = path.absolute().parent
    data = resolve_relative(_resolve_paths(loaded.data, base), base)
    missing_files = file_problems(data, loaded)
    try:
        settings = SuiteSettings.model_validate(data)
    except pydantic.ValidationError as error:
        raise SettingsError(_in_order([*schema_problems(error, loaded), *missing_files])) from None
    experiments: list[Experiment] = []
    problems: list[SettingsProblem] = list(missing_files)
    for index, experiment in enumerate(settings.experiments):
        resolved, missing = _resolve(experiment, settings)
        line, column = loaded.position_of(("experiments", index))
        problems.extend(
            SettingsProblem(path, line, key, message, column) for key, message in missing
        )
        if resolved is not None:
            experiments.append(resolved)
    problems.extend(_reference_problems(settings, experiments, loaded))
    unknown_prices, unpriced = pricing_problems(settings, [e.model for e in experiments], loaded)
    problems.extend(unknown_prices)
    if problems:
        raise SettingsError(_in_order(problems))
    return Suite(settings, tuple(experiments), path, loaded, tuple(unpriced))


def _in_order(problems: Sequence[SettingsProblem]) -> list[SettingsProblem]:
    """By place in the file, as an editor walks it; problems with no place first."""
    return sorted(problems, key=lambda problem: (problem.line or 0, problem.column or 0))


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative datasource paths and plugin directories are relative to the settings file."""
    result = dict(data)
    source = result.get("datasource")
    if isinstance(source, dict) and isinstance(source.get("path"), str):
        given = Path(source["path"]).expanduser()
        result["datasource"] = {
            **source,
            "path": str(given if given.is_absolute() else base / given),
        }
    sinks = result.get("sinks")
    if isinstance(sinks, dict):
        result["sinks"] = {
            name: _with_key_path_resolved(sink, base) for name, sink in sinks.items()
        }
    dirs = result.get("plugin_dirs")
    if isinstance(dirs, list):
        result["plugin_dirs"] = [
            str(base / d) if isinstance(d, str) and not Path(d).is_absolute() else d for d in dirs
        ]
    return result


def _with_key_path_resolved(sink: Any, base: Path) -> Any:
    """A bundle's signing key path, like every path in the settings, is relative to the file."""
    signing = sink.get("signing") if isinstance(sink, dict) else None
    if not isinstance(signing, dict):
        return sink
    resolved = dict(signing)
    for key in ("private_key_path", "key_path"):
        if isinstance(resolved.get(key), str):
            given = Path(resolved[key]).expanduser()
            resolved[key] = str(given if given.is_absolute() else base / given)
    return {**sink, "signing": resolved}


def _resolve(
    experiment: ExperimentSettings, settings: SuiteSettings
) -> tuple[Experiment | None, list[tuple[str, str]]]:
    defaults = settings.defaults

    def pick(field: str) -> Any:
        own = getattr(experiment, field)
        if own is not None:
            return own
        inherited = getattr(defaults, field)
        return inherited if inherited is not None else _BUILTIN_RUN_DEFAULTS.get(field)

    missing = [
        (f"experiments.{experiment.name}.{field}", f"no {field}: set it here or in defaults")
        for field in ("model", "prompt_pack", "sinks")
        if pick(field) is None
    ]
    if missing:
        return None, missing
    model = settings.models.get(pick("model"))
    parameters = dict((model.options().get("parameters") if model else None) or {})
    parameters.update(defaults.parameters or {})
    parameters.update(experiment.parameters or {})
    return (
        Experiment(
            name=experiment.name,
            baseline=experiment.baseline,
            model=pick("model"),
            prompt_pack=pick("prompt_pack"),
            parameters=parameters,
            judges=tuple(pick("judges")),
            row_plugins=tuple(pick("row_plugins")),
            aggregators=tuple(pick("aggregators")),
            sinks=tuple(pick("sinks")),
            concurrency=pick("concurrency"),
            max_retries=pick("max_retries"),
            rate_limits=pick("rate_limits"),
            budget=pick("budget"),
            repeats=pick("repeats"),
            max_error_rate=pick("max_error_rate"),
        ),
        [],
    )


def _reference_problems(
    settings: SuiteSettings, experiments: Sequence[Experiment], loaded: LoadedYaml
) -> list[SettingsProblem]:
    problems: list[SettingsProblem] = []

    def report(path: KeyPath, message: str) -> None:
        problems.append(loaded.problem(path, message))

    def check_sinks(names: Sequence[str], *, frame_sinks: bool, path: KeyPath) -> None:
        """Frame sinks belong to experiments and comparisons, report sinks under ``reports``."""
        check(names, settings.sinks, "sink", path)
        for name in names:
            sink = settings.sinks.get(name)
            if sink is None or isinstance(sink, ReportSinkSettings) != frame_sinks:
                continue
            if frame_sinks:
                report(path, f"sink {name!r} is a suite-level {sink.type}; list it under reports")
            else:
                report(path, f"sink {name!r} writes frames ({sink.type}); it cannot be a report")

    def check(names: Sequence[str], table: Mapping[str, Any], what: str, path: KeyPath) -> None:
        for name in names:
            if name not in table:
                known = ", ".join(sorted(table)) or "none are defined"
                hint = did_you_mean(name, table)
                report(path, f"unknown {what} {name!r}; defined: {known}{hint}")

    for index, experiment in enumerate(experiments):
        where: KeyPath = ("experiments", index)
        check([experiment.model], settings.models, "model", (*where, "model"))
        check(
            [experiment.prompt_pack], settings.prompt_packs, "prompt pack", (*where, "prompt_pack")
        )
        check(experiment.judges, settings.judges, "judge", (*where, "judges"))
        check(experiment.row_plugins, settings.plugins, "plugin", (*where, "row_plugins"))
        check(experiment.aggregators, settings.plugins, "plugin", (*where, "aggregators"))
        check_sinks(experiment.sinks, frame_sinks=True, path=(*where, "sinks"))
        budget = experiment.budget
        model = settings.models.get(experiment.model)
        model_name = model.price_name if model else ""
        if model is not None and budget.max_cost is not None and model_name not in settings.pricing:
            report(
                (*where, "budget"),
                f"budget.max_cost needs a price for model {model_name!r} under pricing",
            )
        elif (
            model is not None
            and settings.budget.max_cost is not None
            and model_name not in settings.pricing
        ):
            report(
                ("budget",),
                f"budget.max_cost (the suite budget) needs a price for model {model_name!r} "
                f"of experiment {experiment.name} under pricing",
            )
    for table in ("judges", "pairwise_judges"):
        for name, judge in getattr(settings, table).items():
            check([judge.model], settings.models, "model", (table, name, "model"))
    check(
        settings.defaults.pairwise,
        settings.pairwise_judges,
        "pairwise judge",
        ("defaults", "pairwise"),
    )
    problems.extend(_judge_problems(settings, experiments, loaded))
    defaults = settings.defaults
    check(defaults.comparisons, settings.plugins, "plugin", ("defaults", "comparisons"))
    check_sinks(
        defaults.comparison_sinks or [], frame_sinks=True, path=("defaults", "comparison_sinks")
    )
    check_sinks(settings.reports, frame_sinks=False, path=("reports",))
    repeated = sorted({name for name in settings.reports if settings.reports.count(name) > 1})
    if repeated:
        report(("reports",), f"reports lists {', '.join(repeated)} more than once")
    return problems


def _judge_problems(
    settings: SuiteSettings, experiments: Sequence[Experiment], loaded: LoadedYaml
) -> list[SettingsProblem]:
    """A judge grades a column its experiment has; it is listed once; a judge budget's cost
    needs its model's price."""
    problems: list[SettingsProblem] = []
    for index, experiment in enumerate(experiments):
        where: KeyPath = ("experiments", index, "judges")
        pack = settings.prompt_packs.get(experiment.prompt_pack)
        answers = [f"{criterion}_response" for criterion in pack.templates] if pack else []
        declared = settings.datasource.columns or {}
        listed: list[tuple[str, str, _JudgeSettings | None, KeyPath]] = [
            ("judges", name, settings.judges.get(name), where) for name in experiment.judges
        ]
        listed += [
            ("pairwise_judges", name, settings.pairwise_judges.get(name), ("defaults", "pairwise"))
            for name in settings.defaults.pairwise
        ]
        for table, name, judge, path in listed:
            if judge is None or pack is None or judge.answer in (*answers, *declared):
                continue
            problems.append(
                loaded.problem(
                    path,
                    f"judge {name} grades column {judge.answer!r}, which experiment "
                    f"{experiment.name} does not produce (its answers: {', '.join(answers)}); "
                    f"set {table}.{name}.answer",
                )
            )
        repeated = sorted({n for n in experiment.judges if experiment.judges.count(n) > 1})
        if repeated:
            problems.append(
                loaded.problem(where, f"judges lists {', '.join(repeated)} more than once")
            )
    judges = [
        (table, name, judge)
        for table in ("judges", "pairwise_judges")
        for name, judge in getattr(settings, table).items()
    ]
    pairwise = settings.defaults.pairwise
    repeated = sorted({name for name in pairwise if pairwise.count(name) > 1})
    if repeated:
        problems.append(
            loaded.problem(
                ("defaults", "pairwise"), f"pairwise lists {', '.join(repeated)} more than once"
            )
        )
    for table, name, judge in judges:
        model = settings.models.get(judge.model)
        if model is None or judge.budget.max_cost is None or model.price_name in settings.pricing:
            continue
        problems.append(
            loaded.problem(
                (table, name, "budget"),
                f"budget.max_cost needs a price for model {model.price_name!r} under pricing",
            )
        )
    return problems


def budget_remaining(budget: BudgetSettings, spent: Decimal, rows: int) -> BudgetSettings:
    """What is left of ``budget`` after a previous attempt spent ``spent`` over ``rows``."""
    return BudgetSettings(
        max_cost=None if budget.max_cost is None else max(Decimal(0), budget.max_cost - spent),
        max_rows=None if budget.max_rows is None else max(0, budget.max_rows - rows),
    )
