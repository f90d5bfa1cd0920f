"""``elspeth view RUN_DIR [RUN_DIR]``: serve one run (or two, compared) to a browser.

Exit codes: 0 after the server is stopped (Ctrl-C); 2 bad arguments, a path that is not a run,
a run above ``--max-level``, or a non-loopback ``--host`` with no token of the operator's.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from elspeth.cli._parser import Parser
from elspeth.outcome import ExitCode

TOKEN_VARIABLE = "ELSPETH_VIEW_TOKEN"  # noqa: S105 - the variable's name, not a token

_EPILOG = f"""\
The server binds 127.0.0.1 on a free port and prints a URL holding a new random access token;
every request without it is refused (403). It reads the run's files, checked against the
digests in manifest.json, and writes nothing. Another --host needs a token of your own in
${TOKEN_VARIABLE} (at least 16 characters).

examples:
  elspeth view elspeth-output/20261128T101500Z-3fa2c1
  elspeth view RUN_BEFORE RUN_AFTER            the same inputs in two runs, side by side
  elspeth view RUN_DIR --max-level OFFICIAL    refuse anything classified above OFFICIAL
"""


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 0 to 65535")
    return int(text)


def view_parser() -> Parser:
    parser = Parser(
        prog="elspeth view",
        description="Review a run's answers side by side in a browser, read-only.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dirs", metavar="RUN_DIR", type=Path, nargs="+", help="a run directory (or two)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port (default: any free port)")
    parser.add_argument(
        "--max-level",
        metavar="LEVEL",
        help="refuse to serve a run classified above LEVEL (e.g. OFFICIAL)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


def view(arguments: argparse.Namespace) -> int:
    from elspeth.security import LevelParseError, SecurityLevel
    from elspeth.view import ViewError, ViewServer, choose_token, open_run, viewed_runs

    if len(arguments.run_dirs) > 2:
        print("elspeth view: give one run directory, or two to compare", file=sys.stderr)
        return ExitCode.CONFIGURATION
    try:
        max_level = (
            SecurityLevel.parse(arguments.max_level) if arguments.max_level is not None else None
        )
        token = choose_token(arguments.host, os.environ.get(TOKEN_VARIABLE))
        labels = ("", "B:") if len(arguments.run_dirs) == 2 else ("",)
        runs = [
            open_run(d, label=label) for d, label in zip(arguments.run_dirs, labels, strict=True)
        ]
        viewed = viewed_runs(runs, max_level)
        server = ViewServer(viewed, arguments.host, arguments.port, token)
    except LevelParseError as error:
        print(f"elspeth view: --max-level: {error}", file=sys.stderr)
        return ExitCode.CONFIGURATION
    except (ViewError, OSError) as error:
        print(f"elspeth view: {error}", file=sys.stderr)
        return ExitCode.CONFIGURATION
    print(f"{viewed.banner}: serving {', '.join(str(d) for d in arguments.run_dirs)}")
    print(f"open {server.url()}", flush=True)
    print("(Ctrl-C stops the server)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return ExitCode.OK
