"""The suite runner: the main job behind ``python -m elspeth.cli --settings FILE``."""

from __future__ import annotations

from elspeth.suite._outcome import ErrorToleranceError, RunOutcome, RunStoppedError, outcome_of
from elspeth.suite._plan import SuitePlan, build_suite_plan
from elspeth.suite._progress import LogProgress, Progress, TerminalProgress
from elspeth.suite._runner import SuiteRunner
from elspeth.suite._setup import (
    RunOptions,
    check_header,
    check_templates,
    describe_plugins,
    runtime_config,
)
from elspeth.suite._summary import ExperimentSummary, RunSummary
from elspeth.suite._validate import StandaloneCeilingError, check_suite

__all__ = [
    "ErrorToleranceError",
    "ExperimentSummary",
    "LogProgress",
    "Progress",
    "RunOptions",
    "RunOutcome",
    "RunStoppedError",
    "RunSummary",
    "StandaloneCeilingError",
    "SuitePlan",
    "SuiteRunner",
    "TerminalProgress",
    "build_suite_plan",
    "check_header",
    "check_suite",
    "check_templates",
    "describe_plugins",
    "outcome_of",
    "runtime_config",
]
