"""``elspeth audit verify RUN_DIR``: check a run's audit log against its hash chain and the
head its manifest recorded.

Exit codes: 0 verified; 1 verification failed (one line per problem, naming the line); 2 bad
arguments or a path that is not a run directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from elspeth.cli._parser import Parser
from elspeth.outcome import ExitCode

_EPILOG = """\
exit codes:
  0  every line is linked to the one before, and the log ends where the manifest says
  1  verification failed: every problem is listed on standard error, with its line number
  2  bad arguments, or RUN_DIR is not a run directory (missing, or no manifest.json)

A run that did not finish (killed, or still running) has no recorded head: that is reported.
"""


def audit_parser() -> Parser:
    parser = Parser(
        prog="elspeth audit",
        description="Check a run's audit log: its hash chain and the head in manifest.json.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["verify"], help="what to do with the audit log")
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory")
    return parser


def audit(arguments: argparse.Namespace) -> int:
    from elspeth.audit import AUDIT_NAME, AuditInputError, verify_run_audit

    try:
        checked = verify_run_audit(arguments.run_dir)
    except AuditInputError as error:
        print(f"elspeth audit verify: {error}", file=sys.stderr)
        return ExitCode.CONFIGURATION
    for problem in checked.problems:
        print(f"elspeth audit verify: {problem}", file=sys.stderr)
    if checked.problems:
        return ExitCode.RUN_FAILED  # the one "failed" status (docs/cli.md)
    head = checked.head
    print(f"audit log verified: {arguments.run_dir / AUDIT_NAME}")
    print(f"  lines: {head.lines}, last hash {head.last_hash}, as manifest.json records")
    return ExitCode.OK
