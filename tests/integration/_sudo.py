"""Reading ``sudo -n -l``: which commands, as whom, a user may run (sudo 1.9 output format)."""

from __future__ import annotations

import re
from dataclasses import dataclass

WORKER_MODULE = "elspeth.orchestrator.worker_process"
REAPER_MODULE = "elspeth.orchestrator.reaper"
_RUNAS = re.compile(r"\(([^)]*)\)\s+((?:[A-Z_]+:\s*)*)")


@dataclass(frozen=True, slots=True)
class SudoEntry:
    runas: str
    tags: tuple[str, ...]
    command: str


def allowed_commands(listing: str) -> list[SudoEntry]:
    """The entries after "may run the following commands", wrapped lines joined again.

    sudo wraps long lines at spaces even when stdout is not a terminal, so the block is joined
    with single spaces and split at each ``(runas) TAGS:`` prefix, then at commas.
    """
    _, marker, block = listing.partition("may run the following commands")
    if not marker:
        return []
    text = " ".join(line.strip() for line in block.splitlines()[1:] if line.strip())
    entries = []
    prefixes = list(_RUNAS.finditer(text))
    for index, prefix in enumerate(prefixes):
        end = prefixes[index + 1].start() if index + 1 < len(prefixes) else len(text)
        tags = tuple(tag.strip().rstrip(":") for tag in prefix.group(2).split(":") if tag.strip())
        for command in text[prefix.end() : end].split(","):
            if command.strip():
                entries.append(SudoEntry(prefix.group(1), tags, command.strip()))
    return entries


def expected_commands(python: str) -> set[str]:
    """Exactly what ``docker/elspeth-sudoers`` allows, for the virtualenv of ``python``."""
    return {
        f"{python} -I -m {WORKER_MODULE}",
        f"{python} -m {WORKER_MODULE}",
        f"{python} -I -m {REAPER_MODULE} *",
    }


def worker_python(entries: list[SudoEntry]) -> str | None:
    """The interpreter of the ``-I`` worker command the listing allows as ``appplugin``."""
    suffix = f" -I -m {WORKER_MODULE}"
    for entry in entries:
        if entry.runas == "appplugin" and entry.command.endswith(suffix):
            return entry.command[: -len(suffix)]
    return None
