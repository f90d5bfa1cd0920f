"""The subcommands: each one's parser and what it runs, in one table.

Usage errors come back as exit status 2 (a line naming the problem), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from elspeth.cli._audit import audit, audit_parser
from elspeth.cli._bundle import keygen, keygen_parser, verify, verify_parser
from elspeth.cli._parser import Parser, UsageError
from elspeth.cli._view import view, view_parser
from elspeth.outcome import ExitCode, exit_code_help

_RUN_EPILOG = f"""\
exit codes:
{exit_code_help()}

A run ends in one status, the same in the summary, manifest.json, the JSON summary, the audit
log's last event and the report banners: complete, complete_with_errors (rows with errors
within max_error_rate), failed, stopped (a budget or an interrupt) or refused (security).

examples:
  elspeth                                   run the bundled sample suite (mock model)
  elspeth validate suite.yaml               check everything that can be checked; read no data
  elspeth run --settings suite.yaml --head 20        preview on the first 20 rows
  elspeth run --settings suite.yaml --json-summary - only JSON on stdout, for scripts
  elspeth run --settings suite.yaml --resume 20261128T101500Z-3fa2c1

bundles (see elspeth verify-bundle --help, elspeth keygen --help):
  elspeth keygen --private signing.pem --public signing.pub.pem
  elspeth verify-bundle bundle__evidence__OFFICIAL.tar.gz --public-key signing.pub.pem

audit log (see elspeth audit --help):
  elspeth audit verify elspeth-output/20261128T101500Z-3fa2c1

review a run in a browser (see elspeth view --help):
  elspeth view elspeth-output/20261128T101500Z-3fa2c1
"""


def _common(parser: Parser) -> None:
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="operational log level, on standard error (default: info)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="where standalone mode keeps its checkpoint key (default: $XDG_STATE_HOME/elspeth)",
    )


def _run_parser() -> Parser:
    parser = Parser(
        prog="elspeth",
        usage="elspeth [run] [--settings FILE] [options]\n"
        "       elspeth {validate,verify-bundle,keygen,audit} ... | --version",
        description=(
            "Run an LLM experiment suite over classified data. Every component's clearance is "
            "checked against the data's classification before anything is read."
        ),
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--settings",
        metavar="FILE",
        type=Path,
        help="suite settings (YAML); default: the bundled sample suite",
    )
    parser.add_argument(
        "--validate-only",
        action="store_true",
        help="the same as 'elspeth validate FILE': check, print the plan, read no data",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        type=Path,
        default=Path("elspeth-output"),
        help="where run directories are created (default: ./elspeth-output)",
    )
    parser.add_argument("--head", metavar="N", type=int, help="preview: only the first N rows")
    parser.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run")
    parser.add_argument(
        "--json-summary",
        metavar="FILE",
        help="also write a machine-readable summary to FILE; with '-', standard output carries "
        "only that JSON and everything for people goes to standard error",
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the settings JSON Schema and exit"
    )
    _common(parser)
    return parser


def _validate_parser() -> Parser:
    parser = Parser(
        prog="elspeth validate",
        description="Check a suite's settings, files, plugins, templates and clearance plan in "
        "one pass, reading no data and calling no model.",
        epilog=f"exit codes:\n{exit_code_help()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("settings", metavar="FILE", type=Path, help="suite settings (YAML)")
    _common(parser)
    return parser


def _run(arguments: argparse.Namespace) -> int:
    from elspeth.cli._run import run_command

    if arguments.head is not None and arguments.head < 1:
        print("elspeth: --head must be at least 1", file=sys.stderr)
        return ExitCode.CONFIGURATION
    if arguments.schema:
        import json

        from elspeth.config import settings_json_schema

        print(json.dumps(settings_json_schema(), indent=2))
        return ExitCode.OK
    return run_command(arguments)


def _validate(arguments: argparse.Namespace) -> int:
    from elspeth.cli._run import run_command

    arguments.validate_only = True
    arguments.json_summary = None
    return run_command(arguments)


SUBCOMMANDS: Mapping[str, tuple[Callable[[], Parser], Callable[[argparse.Namespace], int]]] = {
    "run": (_run_parser, _run),
    "validate": (_validate_parser, _validate),
    "verify-bundle": (verify_parser, verify),
    "keygen": (keygen_parser, keygen),
    "audit": (audit_parser, audit),
    "view": (view_parser, view),
}
"""Subcommand name → (its parser, what it runs)."""


def run_subcommand(name: str, argv: Sequence[str]) -> int:
    """Run subcommand ``name`` with the arguments after it; returns the exit status."""
    make_parser, command = SUBCOMMANDS[name]
    try:
        arguments = make_parser().parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return ExitCode.CONFIGURATION
    if hasattr(arguments, "log_level"):
        import logging

        logging.basicConfig(
            level=arguments.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    return command(arguments)
