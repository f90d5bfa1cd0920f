"""How one run ends: the status and exit code decided once, from what happened.

:func:`outcome_of` maps an exception that ended a run to its status and exit code;
:class:`ErrorTally` counts an experiment's rows with errors and decides, against the
experiment's ``max_error_rate``, whether it failed. The runner records the one
:class:`RunOutcome` in the manifest, the audit log, the reports and the summary.
"""

from __future__ import annotations

import collections
import errno
from dataclasses import dataclass, field
from typing import Any, Final

from elspeth.errors import ConfigurationError, ElspethError
from elspeth.llm import Outcome, RowResult
from elspeth.outcome import ExitCode, RunStatus
from elspeth.security import SecurityError

_REASONS_SHOWN = 3


class RunStoppedError(ElspethError):
    """A budget ran out: work was left undone, and the run is ``stopped``."""


class ErrorToleranceError(ElspethError):
    """An experiment's rows with errors are above its ``max_error_rate``: the run ``failed``."""


@dataclass(frozen=True)
class RunOutcome:
    status: RunStatus
    exit_code: ExitCode
    reason: str | None = None
    early_stopped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "exit_code": int(self.exit_code),
            "reason": self.reason,
            "early_stopped": self.early_stopped,
        }


#: The first row whose type matches an error decides the run's status and exit code. Order
#: matters: a bad key file is both a configuration and a security error, and is the user's to fix.
_OUTCOME_OF_ERROR: Final[tuple[tuple[type[BaseException], RunStatus, ExitCode], ...]] = (
    (KeyboardInterrupt, RunStatus.STOPPED, ExitCode.INTERRUPTED),
    (RunStoppedError, RunStatus.STOPPED, ExitCode.RUN_FAILED),
    (ConfigurationError, RunStatus.FAILED, ExitCode.CONFIGURATION),
    (SecurityError, RunStatus.REFUSED, ExitCode.SECURITY),
    (BaseException, RunStatus.FAILED, ExitCode.RUN_FAILED),
)


def outcome_of(error: BaseException) -> RunOutcome:
    """The status and exit code of a run ended by ``error``, and a reason safe to record: our
    own messages name settings, paths and levels, never row content; an I/O error is named by
    its path and errno; any other exception by its type only."""
    status, code = next((s, c) for kind, s, c in _OUTCOME_OF_ERROR if isinstance(error, kind))
    return RunOutcome(status, code, error_reason(error))


def error_reason(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, RunStoppedError | ErrorToleranceError | ConfigurationError):
        return str(error)
    if isinstance(error, ElspethError):
        return f"{type(error).__name__}: {error}"
    if isinstance(error, OSError):
        return describe_os_error(error)
    return f"internal error: {type(error).__name__}"


def describe_os_error(error: OSError) -> str:
    """``cannot write /out/x.csv: [ENOSPC] No space left on device``: the path and the errno."""
    name = errno.errorcode.get(error.errno, str(error.errno)) if error.errno else "?"
    where = f" on {error.filename}" if error.filename is not None else ""
    return f"I/O error{where}: [{name}] {error.strerror or error}"


@dataclass(frozen=True)
class ErrorExample:
    row: int
    criterion: str
    message: str


@dataclass
class ErrorTally:
    """One experiment's rows with an ERROR (no usable answer; a FAIL is an answer), by reason,
    among the rows it attempted (a row an early stop never reached is neither).

    A row counts once however many of its criteria or repeats erred. Reasons are the error
    kinds; each keeps its first example, whose message names settings and fields, not content.
    """

    attempted: set[int] = field(default_factory=set)
    rows: set[int] = field(default_factory=set)
    by_reason: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, ErrorExample] = field(default_factory=dict)

    def add(self, result: RowResult) -> None:
        self.attempted.add(result.row)
        if result.outcome is not Outcome.ERROR:
            return
        reason = result.error_kind.value if result.error_kind is not None else "unknown"
        self.add_error(result.row, result.criterion, reason, result.error_message or reason)

    def add_error(self, row: int, where: str, reason: str, message: str) -> None:
        """Row ``row`` has an error of kind ``reason`` in ``where`` (a criterion, or a judge
        that could not grade it); ``message`` names settings and fields, never content."""
        self.attempted.add(row)
        self.rows.add(row)
        self.by_reason[reason] += 1
        self.examples.setdefault(reason, ErrorExample(row, where, message))

    @property
    def rate(self) -> float:
        return len(self.rows) / len(self.attempted) if self.attempted else 0.0

    def exceeds(self, max_error_rate: float) -> bool:
        """Above the tolerance; and a run whose every row erred never passes, whatever it is."""
        every_row = bool(self.attempted) and self.rows >= self.attempted
        return every_row or self.rate > max_error_rate

    def describe(self) -> str:
        """``7 of 10 rows (70.0%) have errors: server_error in 5 answers (e.g. row 3, urgency:
        HTTP 500); ...``: the most frequent reasons with counts and one example each."""
        parts = []
        for reason, count in self.by_reason.most_common(_REASONS_SHOWN):
            example = self.examples[reason]
            parts.append(
                f"{reason} in {count} answer(s) (e.g. row {example.row}, {example.criterion}: "
                f"{example.message})"
            )
        more = len(self.by_reason) - _REASONS_SHOWN
        if more > 0:
            parts.append(f"and {more} other reason(s)")
        attempted = len(self.attempted)
        return f"{len(self.rows)} of {attempted} rows ({self.rate:.1%}) have errors: " + "; ".join(
            parts
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "error_rows": len(self.rows),
            "errors_by_reason": dict(self.by_reason.most_common()),
        }
