"""``python -m elspeth.cli`` (also the ``elspeth`` console script): the orchestrator's command.

Without ``--settings`` it runs the bundled sample suite in standalone mode with the ``mock``
model. Exit codes: 0 success, 1 run failed or stopped early (outputs marked partial),
2 configuration error, 3 security refusal. ``elspeth verify-bundle`` and ``elspeth keygen`` are
subcommands with their own options (:mod:`elspeth.cli._bundle`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_CONFIGURATION = 2
EXIT_SECURITY = 3

SESSION_KEY_VARIABLES = ("ELSPETH_SIDECAR_SESSION_KEY", "ELSPETH_SIDECAR_SESSION_KEY_FILE")

_EPILOG = """\
exit codes:
  0  the suite ran to completion
  1  the run failed or stopped early (a budget, an error); outputs are marked partial
  2  configuration error: the settings file, an option or a plugin parameter is wrong
  3  security refusal: the clearance plan, a seal check or the sidecar refused

examples:
  elspeth                                   run the bundled sample suite (mock model)
  elspeth --settings suite.yaml --validate-only
  elspeth --settings suite.yaml --head 20   preview on the first 20 rows
  elspeth --settings suite.yaml --resume 20261128T101500Z-3fa2c1

bundles (see elspeth verify-bundle --help, elspeth keygen --help):
  elspeth keygen --private signing.pem --public signing.pub.pem
  elspeth verify-bundle bundle__evidence__OFFICIAL.tar.gz --public-key signing.pub.pem
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elspeth",
        description=(
            "Run an LLM experiment suite over classified data. Every component's clearance is "
            "checked against the data's classification before anything is read."
        ),
        epilog=_EPILOG,
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
        help="check the settings and print the clearance plan; read no data, call no model",
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
        help="also write a machine-readable summary to FILE ('-' for standard output)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="operational log level (default: info)",
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the settings JSON Schema and exit"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="where standalone mode keeps its checkpoint key (default: $XDG_STATE_HOME/elspeth)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    for name in SESSION_KEY_VARIABLES:
        os.environ.pop(name, None)
    words = list(sys.argv[1:] if argv is None else argv)
    from elspeth.cli._bundle import SUBCOMMANDS, run_subcommand

    if words and words[0] in SUBCOMMANDS:
        return run_subcommand(words[0], words[1:])
    arguments = _parser().parse_args(words)
    if arguments.head is not None and arguments.head < 1:
        print("elspeth: --head must be at least 1", file=sys.stderr)
        return EXIT_CONFIGURATION
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from elspeth.cli._run import run_command

    if arguments.schema:
        from elspeth.config import settings_json_schema

        print(json.dumps(settings_json_schema(), indent=2))
        return EXIT_OK
    settings = arguments.settings
    if settings is None:
        with resources.as_file(resources.files("elspeth") / "_data" / "sample_suite.yaml") as path:
            return run_command(path, arguments)
    return run_command(settings, arguments)
