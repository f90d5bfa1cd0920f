"""Validation before anything is read: every check a run makes before it reads data or calls a
model, each problem in the settings loader's form (``file:line:column: key: what is wrong``).

Nothing here reads data, calls a model or needs the seal authority. Plugin parameters are the
one check that needs a process: the plugin validates them itself, in a catalog worker that never
receives data, so that third-party code is not imported into the orchestrator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, NoReturn

from elspeth.config import (
    Experiment,
    JudgeSettings,
    PairwiseJudgeSettings,
    SettingsError,
    SettingsProblem,
    Suite,
    SuiteSettings,
)
from elspeth.errors import ConfigurationError, ElspethError
from elspeth.llm import PromptPack, create_client
from elspeth.orchestrator import PluginInfo, PluginRuntime
from elspeth.plugins import PluginKind
from elspeth.security import (
    AuthorityError,
    ClearanceError,
    ClearancePlan,
    DeriveRequest,
    FrameCertificate,
    OriginGrant,
    SealAuthority,
    SecurityLevel,
    may_read,
)
from elspeth.sidecar._protocol import STANDALONE_CEILING
from elspeth.suite._reports import open_report_sink

log = logging.getLogger("elspeth.suite")

CATALOG_WORKER = "1 catalog worker (to check plugin parameters)"
"""What validation starts when plugins are configured (and only then)."""


# --- no seal authority (validation starts none) -------------------------------------------


class NoAuthority(SealAuthority):
    """Stands in for the seal authority where none was started (validation): describing
    plugins needs none, and anything that would seal, verify or mint is refused."""

    @staticmethod
    def _refuse() -> NoReturn:
        raise AuthorityError(
            "no seal authority was started for validation: nothing may be sealed or verified"
        )

    def authorize_construct(self, level: SecurityLevel, digest: bytes) -> OriginGrant:
        self._refuse()

    def redeem_grant(self, grant: OriginGrant) -> FrameCertificate:
        self._refuse()

    def derive(
        self, parent_ids: Sequence[str], digest: bytes, floor: SecurityLevel | None = None
    ) -> FrameCertificate:
        self._refuse()

    def derive_batch(self, requests: Sequence[DeriveRequest]) -> list[FrameCertificate]:
        self._refuse()

    def verify_seal(self, certificate: FrameCertificate) -> int:
        self._refuse()

    def verify_batch(self, certificates: Sequence[FrameCertificate]) -> list[int]:
        self._refuse()

    def retire(self, frame_ids: Sequence[str]) -> None:
        self._refuse()


# --- plugins -----------------------------------------------------------------------------------


LIMIT_NAMES: Final = (
    "memory_limit_bytes",
    "cpu_limit_seconds",
    "file_size_limit_bytes",
    "scratch_bytes",
)
"""The worker limits a plugin instance may set for itself."""


def chosen_limits(settings: SuiteSettings) -> dict[str, dict[str, int]]:
    """Registered plugin -> the limits its instances set. Instances of one plugin share its
    workers, so of two values the strictest wins."""
    own: dict[str, dict[str, int]] = {}
    for plugin in settings.plugins.values():
        for name in LIMIT_NAMES:
            value = getattr(plugin, name)
            if value is not None:
                chosen = own.setdefault(plugin.plugin, {})
                chosen[name] = min(value, chosen.get(name, value))
    return own


def _memory_floor_problems(
    suite: Suite, infos: Mapping[str, PluginInfo]
) -> Iterator[SettingsProblem]:
    """An instance whose workers' address-space limit is below what its plugin declares it
    needs: refused now, by name, instead of a MemoryError in the middle of the run."""
    settings = suite.settings
    chosen = chosen_limits(settings)
    for name, instance in settings.plugins.items():
        floor = infos[name].min_memory_limit_bytes if name in infos else 0
        own = chosen.get(instance.plugin, {}).get("memory_limit_bytes")
        limit = settings.workers.memory_limit_bytes if own is None else own
        if limit < floor:
            source = (
                "workers.memory_limit_bytes"
                if own is None
                else f"the smallest memory_limit_bytes of the {instance.plugin} instances"
            )
            yield suite.problem(
                ("plugins", name),
                f"plugin {instance.plugin!r} needs an address-space limit of at least {floor} "
                f"bytes and its workers would get {limit} ({source}): set "
                f"plugins.{name}.memory_limit_bytes: {floor}",
            )


def plugin_problems(
    runtime: PluginRuntime | None, suite: Suite
) -> tuple[dict[str, PluginInfo], list[SettingsProblem]]:
    """Every plugin instance described and its parameters validated by the plugin, in the
    runtime's catalog worker (no data); and every plugin used where its kind does not fit."""
    infos: dict[str, PluginInfo] = {}
    problems: list[SettingsProblem] = []
    plugins = suite.settings.plugins
    if plugins and runtime is None:
        raise ValueError("plugins are configured: describing them needs a plugin runtime")
    for name, settings in plugins.items():
        assert runtime is not None
        try:
            infos[name] = runtime.describe(settings.plugin, settings.params)
        except ElspethError as error:
            problems.append(suite.problem(("plugins", name), str(error)))
    row_kinds = {PluginKind.ROW_PLUGIN, PluginKind.VALIDATOR, PluginKind.EARLY_STOP}
    for index, experiment in enumerate(suite.experiments):
        problems.extend(
            suite.problem(
                ("experiments", index, "row_plugins"),
                f"experiment {experiment.name}: row_plugins lists {p!r}, "
                f"a {infos[p].kind.value} plugin",
            )
            for p in experiment.row_plugins
            if p in infos and infos[p].kind not in row_kinds
        )
        problems.extend(
            suite.problem(
                ("experiments", index, "aggregators"),
                f"experiment {experiment.name}: {a!r} is used as {PluginKind.AGGREGATOR.value} "
                f"but is a {infos[a].kind.value} plugin",
            )
            for a in experiment.aggregators
            if a in infos and infos[a].kind is not PluginKind.AGGREGATOR
        )
    problems.extend(
        suite.problem(
            ("defaults", "comparisons"),
            f"{c!r} is used as {PluginKind.BASELINE_COMPARISON.value} but is a "
            f"{infos[c].kind.value} plugin",
        )
        for c in suite.settings.defaults.comparisons
        if c in infos and infos[c].kind is not PluginKind.BASELINE_COMPARISON
    )
    problems.extend(_memory_floor_problems(suite, infos))
    return infos, _unique(problems)


# --- templates ---------------------------------------------------------------------------------


def prompt_pack(suite: Suite, experiment: Experiment) -> PromptPack:
    pack = suite.settings.prompt_packs[experiment.prompt_pack]
    return PromptPack(
        pack.templates, system=pack.system, constants=pack.constants, name=experiment.prompt_pack
    )


JUDGE_TABLES: Final = ("judges", "pairwise_judges")


def judge_settings(suite: Suite, table: str, judge: str) -> JudgeSettings | PairwiseJudgeSettings:
    settings: JudgeSettings | PairwiseJudgeSettings = getattr(suite.settings, table)[judge]
    return settings


def judge_pack(suite: Suite, judge: str, table: str = "judges") -> PromptPack:
    """The judge's rubric as a one-criterion pack named after the judge."""
    settings = judge_settings(suite, table, judge)
    return PromptPack(
        {judge: settings.rubric},
        system=settings.system,
        constants=settings.constants,
        name=f"{table}.{judge}",
    )


def judge_reference(suite: Suite, judge: str, table: str = "judges") -> str | None:
    """The column a judge's ``reference`` comes from: its own, else the datasource's first
    target, else none."""
    own = judge_settings(suite, table, judge).reference
    targets = suite.settings.datasource.target
    return own if own is not None else (targets[0] if targets else None)


JUDGE_VARIABLES: Final = {
    "judges": ("answer", "reference", "references"),
    "pairwise_judges": ("answer_a", "answer_b", "reference", "references"),
}
"""What a rubric may use besides the row's columns and its constants."""


def template_path(suite: Suite, pack: str, template: str) -> tuple[str, ...]:
    """``triage.criteria.urgency.user`` → the settings key that holds that template
    (an answer pack's → ``prompt_packs.<pack>.answer``; a rubric's → ``judges.<judge>.rubric``)."""
    inner = template.removeprefix(f"{pack}.")
    table, _, judge = pack.partition(".")
    if table in JUDGE_TABLES:
        return (table, judge, "system" if inner == "system" else "rubric")
    if inner.startswith("criteria."):
        if suite.settings.prompt_packs[pack].answer is not None:
            return ("prompt_packs", pack, "system" if inner.endswith(".system") else "answer")
        criterion = inner.removeprefix("criteria.").rsplit(".", 1)[0]
        return ("prompt_packs", pack, "criteria", criterion)
    return ("prompt_packs", pack, inner)


def checks_declared_columns(suite: Suite) -> bool:
    """Whether the declared ``columns`` are all the columns the data will have (so templates
    are checked against them before anything is read); otherwise the run checks the header."""
    source = suite.settings.datasource
    return source.columns is not None and source.extra_columns.value != "keep"


def template_problems(
    suite: Suite, columns: Sequence[str], *, reserved: Sequence[str] = (), header: bool = False
) -> list[SettingsProblem]:
    """Every template field that is not one of ``columns`` (the declared ones, or with
    ``header`` the ones the data's header has), naming the template, the field and the
    columns there are; and every reference column (``target``, a judge's ``reference``) the
    data lacks. ``reserved`` columns (``_row``) are allowed and not listed."""
    problems: list[SettingsProblem] = []
    where = "the data's header has" if header else "the datasource declares"
    listed = ", ".join(columns) or "none"

    def check(pack_name: str, pack: PromptPack, extra: Sequence[str], label: str) -> None:
        for missing in pack.missing_fields([*columns, *reserved, *extra]):
            problems.append(
                suite.problem(
                    template_path(suite, pack_name, missing.template),
                    f"{label}: template {missing.template} uses field {missing.field!r}, which "
                    f"is not a datasource column; the columns {where}: {listed}",
                )
            )

    for experiment in suite.experiments:
        try:
            pack = prompt_pack(suite, experiment)
        except ConfigurationError as error:  # a template syntax error
            problems.append(suite.problem(("prompt_packs", experiment.prompt_pack), str(error)))
            continue
        check(experiment.prompt_pack, pack, (), f"experiment {experiment.name}")
    source = suite.settings.datasource
    if header:
        problems.extend(
            suite.problem(
                ("datasource", "target"),
                f"target column {name!r} is not in the data; the columns {where}: {listed}",
            )
            for name in source.target
            if name not in columns
        )
    for table in JUDGE_TABLES:
        for name in getattr(suite.settings, table):
            problems.extend(
                _rubric_problems(
                    suite, table, name, check=check, columns=columns, where=where, listed=listed
                )
            )
    return _unique(problems)


def _rubric_problems(
    suite: Suite,
    table: str,
    name: str,
    *,
    check: Callable[[str, PromptPack, Sequence[str], str], None],
    columns: Sequence[str],
    where: str,
    listed: str,
) -> list[SettingsProblem]:
    """A rubric's fields (through ``check``), its reference column, and a reference it uses."""
    judge = judge_settings(suite, table, name)
    try:
        rubric = judge_pack(suite, name, table)
    except ConfigurationError as error:
        return [suite.problem((table, name), str(error))]
    check(f"{table}.{name}", rubric, JUDGE_VARIABLES[table], f"judge {name}")
    problems = []
    if judge.reference is not None and judge.reference not in columns:
        problems.append(
            suite.problem(
                (table, name, "reference"),
                f"judge {name}: reference column {judge.reference!r} is not a datasource "
                f"column; the columns {where}: {listed}",
            )
        )
    uses_reference = any("reference" in fields for fields in rubric.referenced_fields().values())
    if uses_reference and judge_reference(suite, name, table) is None:
        problems.append(
            suite.problem(
                (table, name, "rubric"),
                f"judge {name}: the rubric uses 'reference' but there is no reference "
                f"column: set datasource.target or this judge's reference",
            )
        )
    return problems


# --- models, prices and report sinks -----------------------------------------------------------


def client_options(suite: Suite, experiment: Experiment) -> dict[str, Any]:
    """What the experiment's client is created with: the model's options, and the merged
    ``parameters`` for the HTTP providers."""
    model = suite.settings.models[experiment.model]
    options = model.options()
    if experiment.parameters and model.type != "mock":
        options["parameters"] = dict(experiment.parameters)
    return options


def model_problems(suite: Suite) -> list[SettingsProblem]:
    """Every experiment's client created (that is all: nothing is sent), so what the client
    refuses (an unset API key variable, parameters the stage sets itself) is found now."""
    problems: list[SettingsProblem] = []
    for index, experiment in enumerate(suite.experiments):
        model = suite.settings.models[experiment.model]
        for path, options in (
            (("models", experiment.model), model.options()),
            (("experiments", index, "parameters"), client_options(suite, experiment)),
        ):
            try:
                create_client(model.type, options)
            except ConfigurationError as error:
                problems.append(suite.problem(path, str(error)))
                break
    for table in JUDGE_TABLES:
        for name, judge in getattr(suite.settings, table).items():
            model = suite.settings.models[judge.model]
            try:
                create_client(model.type, model.options())
            except ConfigurationError as error:
                problems.append(suite.problem((table, name, "model"), str(error)))
    return _unique(problems)


def is_priced(suite: Suite, experiment: Experiment) -> bool:
    """Whether the experiment's model has a price; without one its cost is unknown."""
    return suite.settings.models[experiment.model].price_name in suite.settings.pricing


def report_sink_problems(suite: Suite) -> list[SettingsProblem]:
    """Every suite-level sink opened (a bundle's signing key loaded and checked)."""
    problems = []
    for name in suite.settings.reports:
        try:
            open_report_sink(suite.report_sink(name))
        except ElspethError as error:
            problems.append(suite.problem(("sinks", name), str(error)))
    return problems


def log_warnings(suite: Suite) -> None:
    for warning in suite.warnings:
        log.warning("%s", warning.describe())


def check_suite(runtime: PluginRuntime | None, suite: Suite) -> dict[str, PluginInfo]:
    """Every check before data is read, all problems in one :class:`SettingsError`: plugin
    parameters, template fields against declared columns, model clients, report sinks."""
    infos, problems = plugin_problems(runtime, suite)
    if checks_declared_columns(suite):
        columns = list(suite.settings.datasource.columns or {})
        problems.extend(template_problems(suite, columns, reserved=("_row",)))
    problems.extend(model_problems(suite))
    problems.extend(report_sink_problems(suite))
    log_warnings(suite)
    if problems:
        raise SettingsError(problems)
    return infos


# --- the standalone daemon's ceiling -----------------------------------------------------------


class StandaloneCeilingError(ClearanceError):
    """Standalone mode's private daemon refuses levels above its ceiling (OFFICIAL_SENSITIVE):
    a suite whose data would be above it is refused before anything is read."""


def ceiling_refusal(suite: Suite, plan: ClearancePlan) -> StandaloneCeilingError | None:
    """The refusal for a standalone suite whose datasource or any component handles data above
    the standalone ceiling; ``None`` when there is none (or in sidecar mode)."""
    if suite.settings.sidecar.mode != "standalone":
        return None
    ceiling = STANDALONE_CEILING
    above: dict[SecurityLevel, list[str]] = {}
    lines: list[str] = []
    source = suite.settings.datasource
    if not may_read(ceiling, source.classification):
        where = suite.problem(
            ("datasource", "classification"), f"the datasource's data is {source.classification}"
        )
        lines.append(where.describe())
    for entry in plan.entries:
        level = max(entry.incoming, entry.outgoing, key=lambda value: value.rank)
        if not may_read(ceiling, level) and not entry.component.is_datasource:
            above.setdefault(level, []).append(entry.component.name)
    lines.extend(
        f"components handling {level} data: {', '.join(names)}"
        for level, names in sorted(above.items(), key=lambda item: item[0].rank)
    )
    if not lines:
        return None
    return StandaloneCeilingError(
        f"standalone mode refuses levels above {ceiling} (its private daemon cannot seal them), "
        "before anything is read:\n  - "
        + "\n  - ".join(lines)
        + "\n  run it with the deployed sidecar (sidecar: {mode: sidecar}) instead"
    )


def _unique(problems: Sequence[SettingsProblem]) -> list[SettingsProblem]:
    return list(dict.fromkeys(problems))
