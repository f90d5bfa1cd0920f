"""``python -m elspeth.cli`` (also the ``elspeth`` console script): the orchestrator's command.

With no arguments it runs the embedded default job in standalone mode: a private sidecar daemon
seals the bundled sample dataset, and the clearance plan of the sample pipeline is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from elspeth.errors import ConfigurationError, ElspethError

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_CONFIGURATION = 2
EXIT_SECURITY = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elspeth",
        description=(
            "Run an LLM experiment suite over classified data. Without options, runs the "
            "bundled sample in standalone mode (a private sidecar daemon for this run only)."
        ),
        epilog=(
            "exit codes: 0 success, 1 run failed, 2 configuration error, 3 security refusal. "
            "Docs: docs/security-model.md"
        ),
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where standalone mode keeps its checkpoint key (default: $XDG_STATE_HOME/elspeth)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    from elspeth.security import SecurityError

    arguments = _parser().parse_args(argv)
    from elspeth.cli._demo import run_sample_job

    try:
        run_sample_job(state_dir=arguments.state_dir)
    except SecurityError as error:
        print(f"elspeth: security refusal: {error}", file=sys.stderr)
        return EXIT_SECURITY
    except ConfigurationError as error:
        print(f"elspeth: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except ElspethError as error:
        print(f"elspeth: run failed: {error}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return EXIT_OK
