"""What a run did: one summary per experiment, and the run's, decided from them.

The JSON summary (``--json-summary``), the console table and the reports all read these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from elspeth.config import Experiment
from elspeth.outcome import ExitCode, RunStatus
from elspeth.suite._audit import AuditLog
from elspeth.suite._outcome import (
    ErrorTally,
    ErrorToleranceError,
    RunOutcome,
    RunStoppedError,
    describe_os_error,
)


@dataclass
class ExperimentSummary:
    name: str
    rows: int = 0
    answers: int = 0
    errors: int = 0
    tally: ErrorTally = field(default_factory=ErrorTally)
    cached: int = 0
    resumed: int = 0
    retries: int = 0
    cost: Decimal = Decimal(0)
    cost_unknown: bool = False
    """The model has no price: ``cost`` (0) means nothing, and the summary's cost is unknown
    (``None`` in :meth:`as_dict` and :attr:`known_cost`), never 0."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    partial: bool = False
    stop_reason: str | None = None
    stopped_by: str | None = None
    """What stopped the experiment: ``"experiment budget"``, ``"suite budget"`` or
    ``"early stop"``; None when it ran through."""
    early_stopped: bool = False
    rows_loaded: int = 0
    """Input rows loaded; ``rows`` is what the results files hold (finished chunks x repeats)."""
    outputs: list[str] = field(default_factory=list)
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each judge's totals (calls, grades, tokens, cost), apart from generation's."""

    def as_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in self.__dict__.items() if k not in ("tally", "cost_unknown")}
        return {**fields, **self.tally.as_dict(), "cost": cost_text(self.known_cost)}

    @property
    def known_cost(self) -> Decimal | None:
        """What the experiment cost; ``None`` when that is unknown (its model has no price)."""
        return None if self.cost_unknown else self.cost


RUNNING: Final = RunOutcome(RunStatus.RUNNING, ExitCode.RUN_FAILED, "the run did not finish")


@dataclass
class RunSummary:
    """What the run did and how it ended; ``error`` is what ended it, if anything did."""

    run_id: str
    run_dir: Path
    outcome: RunOutcome
    experiments: list[ExperimentSummary]
    comparisons: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    error: BaseException | None = None
    manifest_written: bool = True
    budget: dict[str, Any] = field(default_factory=dict)
    """The suite budget's limits and what the run used of it, and which budget stopped it."""

    @property
    def status(self) -> RunStatus:
        return self.outcome.status

    @property
    def exit_code(self) -> ExitCode:
        return self.outcome.exit_code

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            **self.outcome.as_dict(),
            "experiments": [e.as_dict() for e in self.experiments],
            "budget": self.budget,
            "comparisons": self.comparisons,
            "reports": self.reports,
        }


def check_experiment(experiment: Experiment, summary: ExperimentSummary) -> None:
    """Stop the run after an experiment that a budget stopped or whose errors are above its
    tolerance: later experiments would be paid for and could not be compared."""
    if summary.partial:
        raise RunStoppedError(f"experiment {experiment.name} stopped: {summary.stop_reason}")
    if summary.tally.exceeds(experiment.max_error_rate):
        raise ErrorToleranceError(
            f"experiment {experiment.name}: {summary.tally.describe()} "
            f"(max_error_rate is {experiment.max_error_rate:g})"
        )


def finished_outcome(experiments: Sequence[ExperimentSummary]) -> RunOutcome:
    """Every experiment ran through: complete, or complete with errors within tolerance."""
    erred = any(e.tally.rows for e in experiments)
    stopped_early = [e.name for e in experiments if e.early_stopped]
    return RunOutcome(
        RunStatus.COMPLETE_WITH_ERRORS if erred else RunStatus.COMPLETE,
        ExitCode.OK,
        f"early stop in {', '.join(stopped_early)}" if stopped_early else None,
        early_stopped=bool(stopped_early),
    )


def fail_on_audit_failure(summary: RunSummary, audit: AuditLog) -> None:
    """A run whose audit log could not be written is not complete, whatever else it did."""
    if audit.failure is not None and summary.status.finished_whole:
        reason = f"the audit log could not be written: {describe_os_error(audit.failure)}"
        summary.outcome = RunOutcome(RunStatus.FAILED, ExitCode.RUN_FAILED, reason)


def cost_text(cost: Decimal | None) -> str | None:
    """A cost for the JSON summary and reports: a decimal string, or ``None`` when unknown."""
    return None if cost is None else str(cost)
