"""The audit log's hash chain, and checking it.

Each line's ``prev`` is the SHA-256 (hex) of the previous line's bytes, without its newline; the
first line's ``prev`` is :func:`chain_start` of the run id, so a log cannot be passed off as
another run's, nor lose its first lines unseen. The chain shows a line changed, removed,
inserted or moved; only the hash of the last line, kept outside the log (the run's manifest, a
bundle's signed manifest), shows lines cut from the end.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Final

CHAIN_FORMAT: Final = "elspeth-audit-v1"


def chain_start(run_id: str) -> str:
    """The ``prev`` of a run's first line: fixed for the run, so bound to its id."""
    return hashlib.sha256(f"{CHAIN_FORMAT}\n{run_id}".encode()).hexdigest()


def line_hash(line: bytes) -> str:
    """The hash the next line's ``prev`` carries (``line`` without its newline)."""
    return hashlib.sha256(line).hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """Where a log ends: how many lines it has and the hash of the last one (or the chain's
    start, for an empty log)."""

    lines: int
    last_hash: str

    def as_record(self) -> dict[str, int | str]:
        return {"lines": self.lines, "last_hash": self.last_hash}


@dataclass(frozen=True)
class ChainCheck:
    """What :func:`check_chain` found: the log's head and every problem, one line each."""

    head: ChainHead
    problems: tuple[str, ...] = field(default_factory=tuple)


def head_of(data: bytes, run_id: str) -> ChainHead:
    """The head of an existing log, to go on appending to it."""
    lines = data.splitlines()
    return ChainHead(len(lines), line_hash(lines[-1]) if lines else chain_start(run_id))


def check_chain(data: bytes, run_id: str, *, name: str = "audit.jsonl") -> ChainCheck:
    """Check every line of a log's bytes: JSON, this run's, and linked to the line before."""
    problems: list[str] = []
    expected = chain_start(run_id)
    lines = data.splitlines()
    for number, line in enumerate(lines, start=1):
        problem = _line_problem(line, expected, run_id, first=number == 1)
        if problem is not None:
            problems.append(f"{name} line {number}: {problem}")
        expected = line_hash(line)
    if data and not data.endswith(b"\n"):
        problems.append(f"{name} line {len(lines)}: incomplete (no newline): cut short")
    return ChainCheck(ChainHead(len(lines), expected), tuple(problems))


def _line_problem(line: bytes, expected: str, run_id: str, *, first: bool) -> str | None:
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):
        return "not valid JSON: changed or cut short"
    if not isinstance(parsed, dict):
        return "not a JSON object"
    if parsed.get("run") != run_id:
        return f"is not a line of run {run_id}"
    if parsed.get("prev") != expected:
        if first:
            return "prev is not the start of this run's chain: lines before it were removed"
        return (
            "prev is not the hash of the line before: a line was changed, removed, inserted "
            "or moved here"
        )
    return None


def check_head(found: ChainHead, recorded: object, *, where: str) -> list[str]:
    """Compare a log's head with the one ``where`` (a manifest) recorded when the log closed."""
    if not isinstance(recorded, dict):
        return [f"{where} records no audit log head: the run did not finish, or it was removed"]
    problems = []
    if recorded.get("lines") != found.lines:
        problems.append(
            f"{where} records {recorded.get('lines')!r} audit lines, the log has {found.lines}: "
            "lines were removed from or added to its end"
        )
    if recorded.get("last_hash") != found.last_hash:
        problems.append(
            f"{where} records a last audit hash that is not the hash of the log's line "
            f"{found.lines}: its end was changed, or the recorded hash was"
        )
    return problems
