"""Load a suite: parse the YAML, validate it, resolve every experiment against the defaults, and
check every cross-reference — all problems reported together, with file and line."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic

from elspeth.config._errors import SettingsError, SettingsProblem
from elspeth.config._models import (
    BudgetSettings,
    ExperimentSettings,
    RateLimitSettings,
    SuiteSettings,
)
from elspeth.config._yaml import KeyPath, LoadedYaml, dotted, load_yaml
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
    row_plugins: tuple[str, ...]
    aggregators: tuple[str, ...]
    sinks: tuple[str, ...]
    concurrency: int
    max_retries: int
    rate_limits: RateLimitSettings
    budget: BudgetSettings
    repeats: int


@dataclass(frozen=True, slots=True)
class Suite:
    """A validated suite: the settings, the resolved experiments, and where they came from."""

    settings: SuiteSettings
    experiments: tuple[Experiment, ...]
    file: Path
    source: LoadedYaml

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
    "row_plugins": [],
    "aggregators": [],
    "sinks": None,
    "concurrency": 8,
    "max_retries": 3,
    "rate_limits": RateLimitSettings(),
    "budget": BudgetSettings(),
    "repeats": 1,
}


def load_suite(file: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Suite:
    """Read and validate ``file``; raise :class:`SettingsError` listing every problem."""
    path = Path(file)
    loaded = load_yaml(path, environ)
    if not isinstance(loaded.data, dict):
        raise SettingsError([SettingsProblem(path, 1, "", "the settings must be a mapping")])
    try:
        settings = SuiteSettings.model_validate(_resolve_paths(loaded.data, path.parent))
    except pydantic.ValidationError as error:
        raise SettingsError(_problems_from(error, loaded)) from None
    experiments: list[Experiment] = []
    problems: list[SettingsProblem] = []
    for index, experiment in enumerate(settings.experiments):
        resolved, missing = _resolve(experiment, settings)
        problems.extend(
            SettingsProblem(path, loaded.line_of(("experiments", index)), key, message)
            for key, message in missing
        )
        if resolved is not None:
            experiments.append(resolved)
    problems.extend(_reference_problems(settings, experiments, loaded))
    if problems:
        raise SettingsError(problems)
    return Suite(settings, tuple(experiments), path, loaded)


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
    parameters = dict(model.options().get("parameters", {}) if model else {})
    parameters.update(defaults.parameters or {})
    parameters.update(experiment.parameters or {})
    return (
        Experiment(
            name=experiment.name,
            baseline=experiment.baseline,
            model=pick("model"),
            prompt_pack=pick("prompt_pack"),
            parameters=parameters,
            row_plugins=tuple(pick("row_plugins")),
            aggregators=tuple(pick("aggregators")),
            sinks=tuple(pick("sinks")),
            concurrency=pick("concurrency"),
            max_retries=pick("max_retries"),
            rate_limits=pick("rate_limits"),
            budget=pick("budget"),
            repeats=pick("repeats"),
        ),
        [],
    )


def _reference_problems(
    settings: SuiteSettings, experiments: Sequence[Experiment], loaded: LoadedYaml
) -> list[SettingsProblem]:
    problems: list[SettingsProblem] = []

    def report(path: KeyPath, message: str) -> None:
        problems.append(SettingsProblem(loaded.file, loaded.line_of(path), dotted(path), message))

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
                report(path, f"unknown {what} {name!r}; defined: {known}")

    for index, experiment in enumerate(experiments):
        where: KeyPath = ("experiments", index)
        check([experiment.model], settings.models, "model", (*where, "model"))
        check(
            [experiment.prompt_pack], settings.prompt_packs, "prompt pack", (*where, "prompt_pack")
        )
        check(experiment.row_plugins, settings.plugins, "plugin", (*where, "row_plugins"))
        check(experiment.aggregators, settings.plugins, "plugin", (*where, "aggregators"))
        check_sinks(experiment.sinks, frame_sinks=True, path=(*where, "sinks"))
        budget = experiment.budget
        model = settings.models.get(experiment.model)
        model_name = (model.options().get("model") if model else None) or "mock-scorer"
        if budget.max_cost is not None and model_name not in settings.pricing:
            report(
                (*where, "budget"),
                f"budget.max_cost needs a price for model {model_name!r} under pricing",
            )
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


def _problems_from(error: pydantic.ValidationError, loaded: LoadedYaml) -> list[SettingsProblem]:
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        location: KeyPath = tuple(part for part in detail["loc"] if isinstance(part, str | int))
        # Discriminated unions add the tag ("csv") to the location; it is not a key.
        keys = _existing_prefix(location, loaded.data)
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = "unknown key"
        elif detail["type"] == "missing":
            message = "required key is missing"
        problems.append(
            SettingsProblem(loaded.file, loaded.line_of(keys), dotted(location), message)
        )
    return problems


def _existing_prefix(location: KeyPath, data: Any) -> KeyPath:
    found: list[str | int] = []
    node = data
    for part in location:
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_mapping or in_list):
            continue  # a discriminator tag or a model name pydantic adds: not a key
        node = node[part]
        found.append(part)
    return tuple(found)


def budget_remaining(budget: BudgetSettings, spent: Decimal, rows: int) -> BudgetSettings:
    """What is left of ``budget`` after a previous attempt spent ``spent`` over ``rows``."""
    return BudgetSettings(
        max_cost=None if budget.max_cost is None else max(Decimal(0), budget.max_cost - spent),
        max_rows=None if budget.max_rows is None else max(0, budget.max_rows - rows),
    )
