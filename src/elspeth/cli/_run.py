"""``elspeth run`` and ``elspeth validate``: load, validate or run, summarise, and exit with the
run's one status.

With ``--json-summary -`` standard output carries only the JSON summary; everything meant for
people (plan, table, paths, errors) goes to standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from elspeth.cli._early import EarlyDaemon, looks_standalone, peek, state_used, uses_http
from elspeth.errors import ElspethError
from elspeth.outcome import ExitCode

if TYPE_CHECKING:
    from elspeth.security import ClearancePlan
    from elspeth.suite import RunSummary, SuiteRunner

SUMMARY_FORMAT = "elspeth-run-summary-v1"


def plan_table(plan: ClearancePlan) -> Table:
    table = Table(title="Clearance plan (checked before any data is read)")
    for column in ("component", "kind", "clearance", "receives", "emits", "verdict"):
        table.add_column(column, no_wrap=True)
    for entry in plan.entries:
        component = entry.component
        table.add_row(
            component.name,
            component.kind,
            str(component.clearance),
            str(entry.incoming),
            str(entry.outgoing),
            "ok" if entry.allowed else "[bold red]REFUSED[/]",
        )
    return table


def _console(stream: object) -> Console:
    console = Console(file=stream)  # type: ignore[arg-type]
    return console if console.is_terminal else Console(file=stream, width=160)  # type: ignore[arg-type]


def run_command(arguments: argparse.Namespace) -> int:
    """Run or validate the suite ``arguments.settings`` (the bundled sample when None)."""
    json_to_stdout = arguments.json_summary == "-"
    console = _console(sys.stderr if json_to_stdout else sys.stdout)
    errors = _console(sys.stderr)
    runner: SuiteRunner | None = None
    early: EarlyDaemon | None = None
    try:
        if arguments.settings is None:
            sample = resources.files("elspeth") / "_data" / "sample_suite.yaml"
            with resources.as_file(sample) as path:
                early = _start_early(path, arguments)
                runner = _runner(path, arguments, console, early)
        else:
            early = _start_early(arguments.settings, arguments)
            runner = _runner(arguments.settings, arguments, console, early)
        if arguments.validate_only:
            return _validate(runner, console)
        try:
            summary = _run(runner, arguments, console)
        finally:
            if early is not None:  # a run that ended before it took the daemon
                early.discard(restore_umask=False)  # the run set its umask itself
    except ElspethError as error:
        return _refused_before_the_run(error, runner, arguments, errors)
    if summary.error is not None:
        errors.print(
            f"[bold red]elspeth: run {summary.status}[/]: {summary.outcome.reason}",
            highlight=False,
            soft_wrap=True,
        )
    if not summary.manifest_written:
        errors.print(
            f"elspeth: the manifest in {summary.run_dir} still says running: the run's end could "
            f"not be written there; this run is {summary.status}",
            highlight=False,
            soft_wrap=True,
        )
    if arguments.json_summary:
        _write_summary(arguments.json_summary, summary_document(summary), errors)
    return summary.exit_code


def _start_early(settings: Path, arguments: argparse.Namespace) -> EarlyDaemon | None:
    """A run (not a validation) of standalone settings starts its daemon now, before the
    heavy imports of loading the settings (see :mod:`elspeth.cli._early`) — once a run has
    used the state directory: a first run makes it (and the daemon its key) where it always
    did, so settings refused on a first run leave no state directory behind."""
    if arguments.validate_only:
        return None
    document = peek(settings)
    if not looks_standalone(document):
        return None
    from elspeth.sidecar import default_state_dir

    state_dir = default_state_dir() if arguments.state_dir is None else arguments.state_dir
    if not state_used(state_dir):
        return None
    return EarlyDaemon(arguments.state_dir, then_import=("aiohttp",) if uses_http(document) else ())


def _runner(
    settings: Path,
    arguments: argparse.Namespace,
    console: Console,
    early: EarlyDaemon | None = None,
) -> SuiteRunner:
    try:
        from elspeth.config import load_suite
        from elspeth.suite import RunOptions, SuiteRunner

        suite = load_suite(settings)
        standalone = suite.settings.sidecar.mode == "standalone"
        options = RunOptions(
            output_dir=arguments.output_dir.resolve() if "output_dir" in arguments else Path(),
            head=getattr(arguments, "head", None),
            resume=getattr(arguments, "resume", None),
            state_dir=arguments.state_dir,
            standalone_daemon=early.take if early is not None and standalone else None,
        )
        if standalone:
            console.print(
                "[bold yellow]STANDALONE MODE[/]: a private sidecar daemon runs for this run "
                "only, as this user; levels above OFFICIAL_SENSITIVE are refused."
            )
        runner = SuiteRunner(suite, options)
    except BaseException:
        if early is not None:  # not a run after all: as if the daemon had never started
            early.discard(restore_umask=True)
        raise
    if early is not None and not standalone:
        early.discard(restore_umask=True)
    return runner


def _validate(runner: SuiteRunner, console: Console) -> int:
    from elspeth.security import ClearancePlanError

    suite_plan = runner.validate()
    console.print(plan_table(suite_plan.plan))
    console.print(suite_plan.started_line, highlight=False)
    if suite_plan.plan.violations:
        raise ClearancePlanError(suite_plan.plan.violations)
    console.print(f"settings valid: {runner.suite.file}", soft_wrap=True, highlight=False)
    return ExitCode.OK


def _run(runner: SuiteRunner, arguments: argparse.Namespace, console: Console) -> RunSummary:
    from elspeth.suite import LogProgress, TerminalProgress

    progress = TerminalProgress(console) if console.is_terminal else LogProgress()
    with progress:
        summary = runner.run(progress)
    if runner.last_plan is not None:
        console.print(plan_table(runner.last_plan.plan))
    console.print(_summary_table(summary))
    # Paths are printed whole and literally: a script may read them back.
    console.print(f"outputs: {summary.run_dir}", soft_wrap=True, markup=False, highlight=False)
    for report in summary.reports:
        console.print(
            f"report: {summary.run_dir / report}", soft_wrap=True, markup=False, highlight=False
        )
    return summary


def _refused_before_the_run(
    error: ElspethError,
    runner: SuiteRunner | None,
    arguments: argparse.Namespace,
    errors: Console,
) -> int:
    """Bad settings, a bad path or a refused plan: one message, and the JSON summary when one
    was asked for (with the run id if a run had been named)."""
    from elspeth.suite import outcome_of

    outcome = outcome_of(error)
    what = {
        ExitCode.CONFIGURATION: "configuration error",
        ExitCode.SECURITY: "security refusal",
    }.get(outcome.exit_code, "failed")
    errors.print(f"[bold red]elspeth: {what}[/]: {error}", highlight=False, soft_wrap=True)
    if arguments.json_summary:
        document: dict[str, Any] = {
            "format": SUMMARY_FORMAT,
            "run_id": None if runner is None or arguments.validate_only else runner.run_id,
            "run_dir": None,
            **outcome.as_dict(),
            "experiments": [],
            "budget": {"suite": None, "stopped_by": None},
            "comparisons": [],
            "reports": [],
            "outputs": [],
        }
        _write_summary(arguments.json_summary, document, errors)
    return outcome.exit_code


def summary_document(summary: RunSummary) -> dict[str, Any]:
    """The JSON summary (docs/json-summary.schema.json): the run's outcome, per-experiment
    counts and budget state, and every output's full path."""
    names = [
        *(name for experiment in summary.experiments for name in experiment.outputs),
        *summary.comparisons,
        *summary.reports,
    ]
    return {
        "format": SUMMARY_FORMAT,
        **summary.as_dict(),
        "outputs": [str(summary.run_dir / name) for name in names],
    }


def _write_summary(destination: str, document: dict[str, Any], errors: Console) -> None:
    text = json.dumps(document, indent=2)
    if destination == "-":
        print(text)
        return
    try:
        Path(destination).write_text(text + "\n", "utf-8")
    except OSError as error:
        errors.print(
            f"elspeth: the JSON summary could not be written to {destination}: "
            f"{error.strerror or error}",
            highlight=False,
            soft_wrap=True,
        )


def _summary_table(summary: RunSummary) -> Table:
    title = f"Run {summary.run_id}: {summary.status}"
    if summary.outcome.early_stopped:
        title += f" ({summary.outcome.reason})"
    table = Table(title=title)
    for column in ("experiment", "rows", "answers", "errors", "cached", "resumed", "cost"):
        table.add_column(column, justify="right" if column != "experiment" else "left")
    for experiment in summary.experiments:
        table.add_row(
            experiment.name,
            str(experiment.rows),
            str(experiment.answers),
            str(experiment.errors),
            str(experiment.cached),
            str(experiment.resumed),
            "unknown" if experiment.known_cost is None else f"{experiment.known_cost:.4f}",
        )
    return table
