"""What the command does with a settings file: validate, run, summarise, map errors to exits."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from elspeth.cli import EXIT_CONFIGURATION, EXIT_OK, EXIT_RUN_FAILED, EXIT_SECURITY
from elspeth.errors import ConfigurationError, ElspethError
from elspeth.security import ClearancePlan, SecurityError

if TYPE_CHECKING:
    from elspeth.suite import RunSummary


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


def run_command(settings: Path, arguments: argparse.Namespace) -> int:
    console = _console(sys.stdout)
    errors = _console(sys.stderr)
    try:
        return _run(settings, arguments, console)
    except SecurityError as error:
        _report(errors, arguments, "security refusal", error, EXIT_SECURITY)
        return EXIT_SECURITY
    except ConfigurationError as error:
        _report(errors, arguments, "configuration error", error, EXIT_CONFIGURATION)
        return EXIT_CONFIGURATION
    except ElspethError as error:
        _report(errors, arguments, "run failed", error, EXIT_RUN_FAILED)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        errors.print("elspeth: interrupted; resume with --resume", highlight=False)
        return EXIT_RUN_FAILED


def _report(
    errors: Console, arguments: argparse.Namespace, what: str, error: Exception, code: int
) -> None:
    """Say what went wrong on one line, and in the JSON summary when one was asked for."""
    errors.print(f"[bold red]elspeth: {what}[/]: {error}", highlight=False, soft_wrap=True)
    if arguments.json_summary:
        _write_summary(
            arguments.json_summary,
            {"status": what, "exit_code": code, "error": f"{type(error).__name__}: {error}"},
        )


def _write_summary(destination: str, summary: dict[str, object]) -> None:
    text = json.dumps(summary, indent=2)
    if destination == "-":
        print(text)
    else:
        Path(destination).write_text(text + "\n", "utf-8")


def _run(settings: Path, arguments: argparse.Namespace, console: Console) -> int:
    from elspeth.config import load_suite
    from elspeth.suite import LogProgress, RunOptions, SuiteRunner, TerminalProgress

    suite = load_suite(settings)
    options = RunOptions(
        output_dir=arguments.output_dir.resolve(),
        head=arguments.head,
        resume=arguments.resume,
        state_dir=arguments.state_dir,
    )
    if suite.settings.sidecar.mode == "standalone":
        console.print(
            "[bold yellow]STANDALONE MODE[/]: a private sidecar daemon runs for this run only, "
            "as this user; levels above OFFICIAL_SENSITIVE are refused."
        )
    runner = SuiteRunner(suite, options)
    if arguments.validate_only:
        suite_plan = runner.validate()
        console.print(plan_table(suite_plan.plan))
        if suite_plan.plan.violations:
            from elspeth.security import ClearancePlanError

            raise ClearancePlanError(suite_plan.plan.violations)
        console.print(f"settings valid: {settings}")
        return EXIT_OK
    progress = TerminalProgress(console) if console.is_terminal else LogProgress()
    try:
        with progress:
            summary = runner.run(progress)
    finally:
        if runner.last_plan is not None:
            console.print(plan_table(runner.last_plan.plan))
    console.print(_summary_table(summary))
    # Paths are printed whole and literally: a script may read them back.
    console.print(f"outputs: {summary.run_dir}", soft_wrap=True, markup=False, highlight=False)
    for report in summary.reports:
        console.print(
            f"report: {summary.run_dir / report}", soft_wrap=True, markup=False, highlight=False
        )
    if arguments.json_summary:
        _write_summary(arguments.json_summary, summary.as_dict())
    return EXIT_OK


def _summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"Run {summary.run_id}: {summary.status}")
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
            f"{experiment.cost:.4f}",
        )
    return table
