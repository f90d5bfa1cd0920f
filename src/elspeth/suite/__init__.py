"""The suite runner: the main job behind ``python -m elspeth.cli --settings FILE``."""

from __future__ import annotations

from elspeth.suite._plan import SuitePlan, build_suite_plan
from elspeth.suite._progress import LogProgress, Progress, TerminalProgress
from elspeth.suite._runner import (
    ExperimentSummary,
    RunFailedError,
    RunOptions,
    RunSummary,
    SuiteRunner,
    check_templates,
    describe_plugins,
    runtime_config,
)

__all__ = [
    "ExperimentSummary",
    "LogProgress",
    "Progress",
    "RunFailedError",
    "RunOptions",
    "RunSummary",
    "SuitePlan",
    "SuiteRunner",
    "TerminalProgress",
    "build_suite_plan",
    "check_templates",
    "describe_plugins",
    "runtime_config",
]
