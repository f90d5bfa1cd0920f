"""``elspeth`` (also ``python -m elspeth.cli``): the orchestrator's command line.

Subcommands: ``run`` (the default: ``elspeth --settings FILE`` is ``elspeth run --settings
FILE``), ``validate``, ``verify-bundle``, ``keygen`` and ``audit verify``; ``elspeth --version``.
Without settings, ``run`` runs the bundled sample suite in standalone mode with the ``mock``
model. Exit codes are :class:`elspeth.outcome.ExitCode`, one meaning each, listed by ``--help``.
SIGTERM stops a run the way Ctrl-C does: the manifest says ``stopped`` and the exit status is 130.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from elspeth.outcome import ExitCode

SESSION_KEY_VARIABLES = ("ELSPETH_SIDECAR_SESSION_KEY", "ELSPETH_SIDECAR_SESSION_KEY_FILE")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"elspeth {version('elspeth')}"
    except PackageNotFoundError:
        return "elspeth (not installed as a distribution)"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """The first SIGINT or SIGTERM unwinds the run as an interrupt, so every context manager
    (daemon, workers, manifest) closes; later ones are ignored while it shuts down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    for name in SESSION_KEY_VARIABLES:
        os.environ.pop(name, None)
    words = list(sys.argv[1:] if argv is None else argv)
    if words in (["--version"], ["-V"]):
        print(_version())
        return ExitCode.OK
    from elspeth.cli._commands import SUBCOMMANDS, run_subcommand

    name = words[0] if words and words[0] in SUBCOMMANDS else "run"
    arguments = words[1:] if words and words[0] in SUBCOMMANDS else words
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_subcommand(name, arguments)
    except KeyboardInterrupt:
        print("elspeth: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
