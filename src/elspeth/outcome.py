"""How a run ends: one status and one exit code, the same everywhere the run is described.

A run ends in exactly one :class:`RunStatus`; the summary table, ``manifest.json``, the JSON
summary, the audit log's last event and the report banners all show that one value.
:func:`exit_code_for` is the only mapping from a status (and the kind of failure) to the process
exit code. This module imports nothing heavy: the command line reads it before any run starts.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """``RUNNING`` only while a run goes; every finished run has one of the other five."""

    RUNNING = "running"
    COMPLETE = "complete"
    """Every row has an answer; no row had an error."""
    COMPLETE_WITH_ERRORS = "complete_with_errors"
    """Every row was attempted; the rows with errors are within ``max_error_rate``."""
    FAILED = "failed"
    """Errors above ``max_error_rate``, a stage or an output failed, or the settings were bad."""
    STOPPED = "stopped"
    """A budget ran out or the run was interrupted; work was left undone."""
    REFUSED = "refused"
    """A security rule refused the run (the clearance plan, a seal, the daemon)."""

    @property
    def finished_whole(self) -> bool:
        """A run whose outputs cover all its work: the only kind a consumer may trust whole."""
        return self in (RunStatus.COMPLETE, RunStatus.COMPLETE_WITH_ERRORS)


class ExitCode(enum.IntEnum):
    """The process exit status: one meaning each (``elspeth --help`` lists them)."""

    OK = 0
    RUN_FAILED = 1
    CONFIGURATION = 2
    SECURITY = 3
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "complete: every row answered, or its errors within max_error_rate",
    ExitCode.RUN_FAILED: "failed or stopped: errors above max_error_rate, a stage or an output "
    "failed, a budget ran out",
    ExitCode.CONFIGURATION: "configuration error: the settings file, an option, a path or a "
    "plugin parameter is wrong",
    ExitCode.SECURITY: "security refusal: the clearance plan, a seal check or the sidecar refused",
    ExitCode.INTERRUPTED: "interrupted (SIGINT or SIGTERM): the run is stopped; --resume goes on",
}


def exit_code_help() -> str:
    """The exit codes as ``--help`` lists them."""
    return "\n".join(f"  {code.value:<3}  {code.meaning}" for code in ExitCode)
