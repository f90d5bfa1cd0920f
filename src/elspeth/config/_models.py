"""The suite settings schema: one YAML file describes datasource, models, prompts, plugins,
sinks and experiments. Unknown keys are errors everywhere (``extra="forbid"``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from elspeth.bundle import BundleConfig
from elspeth.datasources import ConfiguredLevel, DatasourceConfig
from elspeth.llm import AzureOpenAIOptions, GradeScale, MockOptions, OpenAIOptions
from elspeth.reports import ExcelReportConfig, HtmlReportConfig, MarkdownReportConfig
from elspeth.sinks import CsvSinkConfig, JsonlSinkConfig, ParquetSinkConfig

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]

AnySinkConfig = Annotated[
    CsvSinkConfig
    | JsonlSinkConfig
    | ParquetSinkConfig
    | HtmlReportConfig
    | MarkdownReportConfig
    | ExcelReportConfig
    | BundleConfig,
    Field(discriminator="type"),
]
"""A sink's settings. The first three write an experiment's frames; the others are suite-level
(listed under ``reports``) and see every experiment, comparison and the clearance plan."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteInfo(_Strict):
    name: Name
    description: str = ""


class SidecarSettings(_Strict):
    """How to reach the seal authority.

    ``standalone`` starts a private daemon for this run (one user; levels above
    OFFICIAL_SENSITIVE refused); ``sidecar`` connects to the deployed daemon.
    """

    mode: Literal["standalone", "sidecar"] = "standalone"
    socket_path: Path = Path("/run/sidecar/auth.sock")
    session_key_path: Path = Path("/run/sidecar/.session")
    ready_timeout_seconds: float = Field(default=30.0, gt=0, le=600)


class ModelSettings(_Strict):
    """A model endpoint: ``type`` picks the provider; the other keys are its options (see
    docs/llm.md), each provider's a strict schema checked when the settings are loaded."""

    type: str
    clearance: ConfiguredLevel

    def options(self) -> dict[str, Any]:
        """The provider's options, as the client takes them (every key but type and clearance)."""
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name not in ("type", "clearance")
        }


class MockModelSettings(ModelSettings, MockOptions):
    type: Literal["mock"]


class OpenAIModelSettings(ModelSettings, OpenAIOptions):
    type: Literal["openai"]


class AzureOpenAIModelSettings(ModelSettings, AzureOpenAIOptions):
    type: Literal["azure_openai"]


AnyModelSettings = Annotated[
    MockModelSettings | OpenAIModelSettings | AzureOpenAIModelSettings,
    Field(discriminator="type"),
]
"""A model's settings; ``type`` selects the provider and so the options it accepts."""


class Price(_Strict):
    prompt_per_1k: Decimal = Field(ge=0)
    completion_per_1k: Decimal = Field(ge=0)


ANSWER = "answer"
"""The criterion of an answer pack: its reply is the ``answer_response`` column."""


class PromptPackSettings(_Strict):
    """Either ``criteria`` (the model rates each row on each criterion) or ``answer`` (the
    model answers each row; the answer is the ``answer_response`` column, for scorers and
    judges)."""

    system: str | None = None
    criteria: dict[Name, str] | None = Field(default=None, min_length=1)
    answer: str | None = Field(default=None, description="The template whose reply is the answer.")
    constants: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _criteria_or_answer(self) -> PromptPackSettings:
        if (self.criteria is None) == (self.answer is None):
            raise ValueError("give exactly one of 'criteria' (rate each row) or 'answer'")
        return self

    @property
    def templates(self) -> dict[str, str]:
        """Criterion name -> user template; an answer pack has the one criterion ``answer``."""
        return dict(self.criteria) if self.criteria is not None else {ANSWER: str(self.answer)}


class PluginSettings(_Strict):
    """An instance of a registered plugin, with its parameters and error policy.

    ``clearance`` and ``output_floor`` here are what the suite author declares for the plan;
    they may not be below what the plugin itself declares (checked against the registry).
    """

    plugin: str
    clearance: ConfiguredLevel
    output_floor: ConfiguredLevel | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["fail", "skip"] = "fail"
    memory_limit_bytes: int | None = Field(
        default=None, gt=0, description="This plugin's address-space limit; default: workers'."
    )
    cpu_limit_seconds: int | None = Field(
        default=None, gt=0, description="This plugin's CPU-time limit; default: workers'."
    )
    file_size_limit_bytes: int | None = Field(
        default=None, gt=0, description="This plugin's file-size limit; default: workers'."
    )
    scratch_bytes: int | None = Field(
        default=None, gt=0, description="This plugin's scratch-directory limit; default: workers'."
    )


class RateLimitSettings(_Strict):
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)


class BudgetSettings(_Strict):
    max_cost: Decimal | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)


class _JudgeSettings(_Strict):
    """What every model-graded judge has: a model, a rubric template (it sees the row's
    columns, ``reference`` (the ``reference`` column's value; by default the datasource's
    first ``target``), ``references`` (every target column by name) and ``constants``), and
    its own ``budget``, apart from generation's. The judge's model is a component of the
    clearance plan with that model's clearance."""

    model: Name
    rubric: str = Field(min_length=1)
    system: str | None = None
    answer: str = Field(default="answer_response", min_length=1)
    reference: str | None = Field(default=None, min_length=1)
    constants: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)


class JudgeSettings(_JudgeSettings):
    """A judge grading each answer of an experiment (``answer`` in the rubric)."""

    grade: GradeScale = GradeScale()


PAIRWISE_LABELS: Final = ("A", "B", "TIE")


class PairwiseJudgeSettings(_JudgeSettings):
    """A judge choosing between a variant's answer and the baseline's on the same row
    (``answer_a`` and ``answer_b`` in the rubric, in an order drawn per row from ``seed``),
    and judging again with the order swapped on a ``swap_sample`` share of the rows."""

    grade: GradeScale = GradeScale(labels={"A": 1.0, "B": 0.0, "TIE": 0.5})
    swap_sample: float = Field(
        default=0.1, ge=0, le=1, description="Share of rows judged again in swapped order."
    )
    seed: int = 0

    @model_validator(mode="after")
    def _labels_name_a_b_and_tie(self) -> PairwiseJudgeSettings:
        labels = self.grade.label_values
        if labels is None or sorted(label.upper() for label in labels) != sorted(PAIRWISE_LABELS):
            raise ValueError("a pairwise judge's grade labels are A, B and TIE")
        return self


class RunSettings(_Strict):
    """Settings an experiment inherits from ``defaults`` and may override."""

    model: str | None = None
    prompt_pack: str | None = None
    parameters: dict[str, Any] | None = None
    judges: list[str] | None = None
    row_plugins: list[str] | None = None
    aggregators: list[str] | None = None
    sinks: list[str] | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    max_retries: int | None = Field(default=None, ge=0, le=20)
    rate_limits: RateLimitSettings | None = None
    budget: BudgetSettings | None = None
    repeats: int | None = Field(default=None, ge=1, le=100)
    max_error_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of rows with an ERROR (no usable answer) above which the experiment, "
        "and so the run, fails (default 0: any error fails the run).",
    )


class ExperimentSettings(RunSettings):
    name: Name
    baseline: bool = False


class Defaults(RunSettings):
    comparisons: list[str] = Field(default_factory=list)
    pairwise: list[str] = Field(
        default_factory=list,
        description="Pairwise judges (pairwise_judges) run on each variant against the baseline.",
    )
    comparison_sinks: list[str] | None = None
    cache: bool = True
    chunk_rows: int = Field(default=1000, ge=1, le=1_000_000)


class WorkerSettings(_Strict):
    """Plugin workers. In ``sidecar`` mode they run as ``user`` through sudo; in standalone
    mode as the orchestrator's own user. ``scratch_root`` must be writable by that user."""

    pool_size: int = Field(default=1, ge=1, le=32)
    call_timeout_seconds: float = Field(default=120.0, gt=0)
    user: str = "appplugin"
    sudo: Path = Path("/usr/bin/sudo")
    scratch_root: Path | None = None
    allow_partial_sandbox: bool = Field(
        default=False,
        description="Audited override: run above OFFICIAL_SENSITIVE without Landlock/seccomp.",
    )
    max_payload_bytes: int = Field(
        default=64 * 1024**2,
        ge=64 * 1024,
        description="Largest Arrow stream a worker may send in one payload.",
    )
    memory_limit_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="Each worker's address-space limit (RLIMIT_AS)."
    )
    cpu_limit_seconds: int = Field(
        default=3600, gt=0, description="Each worker's CPU-time limit over its life (RLIMIT_CPU)."
    )
    file_size_limit_bytes: int = Field(
        default=256 * 1024**2,
        gt=0,
        description="Largest file a worker may write, scratch included (RLIMIT_FSIZE).",
    )
    scratch_bytes: int = Field(
        default=256 * 1024**2,
        gt=0,
        description="Most a worker's scratch directory may hold, every entry at least 4 KiB.",
    )
    max_in_flight_bytes: int = Field(
        default=256 * 1024**2,
        ge=64 * 1024,
        description="Payload bytes held from all workers of a run together; at least "
        "max_payload_bytes.",
    )

    @model_validator(mode="after")
    def _in_flight_fits_a_payload(self) -> WorkerSettings:
        if self.max_in_flight_bytes < self.max_payload_bytes:
            raise ValueError(
                f"max_in_flight_bytes ({self.max_in_flight_bytes}) must be at least "
                f"max_payload_bytes ({self.max_payload_bytes})"
            )
        return self


class SuiteSettings(_Strict):
    suite: SuiteInfo
    sidecar: SidecarSettings = SidecarSettings()
    datasource: Annotated[DatasourceConfig, Field(discriminator="type")]
    models: dict[Name, AnyModelSettings] = Field(min_length=1)
    pricing: dict[str, Price] = Field(default_factory=dict)
    budget: BudgetSettings = Field(
        default_factory=BudgetSettings,
        description="The suite budget: max_cost and max_rows across every experiment together "
        "(checkpointed spend of a resumed run included), besides each experiment's own budget.",
    )
    prompt_packs: dict[Name, PromptPackSettings] = Field(min_length=1)
    judges: dict[Name, JudgeSettings] = Field(
        default_factory=dict,
        description="Model-graded judges, listed by an experiment's (or defaults') judges.",
    )
    pairwise_judges: dict[Name, PairwiseJudgeSettings] = Field(
        default_factory=dict,
        description="Judges of a variant's answer against the baseline's, listed by "
        "defaults.pairwise.",
    )
    plugins: dict[Name, PluginSettings] = Field(default_factory=dict)
    plugin_dirs: list[Path] = Field(default_factory=list)
    workers: WorkerSettings = WorkerSettings()
    sinks: dict[Name, AnySinkConfig] = Field(min_length=1)
    defaults: Defaults = Defaults()
    experiments: list[ExperimentSettings] = Field(min_length=1)
    reports: list[Name] = Field(
        default_factory=list,
        description="Suite-level sinks (html_report, markdown_report, excel_report, bundle) "
        "written after every experiment and comparison.",
    )

    @model_validator(mode="after")
    def _exactly_one_baseline(self) -> SuiteSettings:
        baselines = [e.name for e in self.experiments if e.baseline]
        if len(baselines) != 1:
            found = ", ".join(baselines) if baselines else "none"
            raise ValueError(f"exactly one experiment must have baseline: true (found {found})")
        names = [e.name for e in self.experiments]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"experiment names repeat: {', '.join(repeated)}")
        return self
