"""Sink failures: the message names the destination and never holds row content."""

from __future__ import annotations

from pathlib import Path

from elspeth.errors import ElspethError


class SinkError(ElspethError):
    """A sink could not write ``destination``; nothing that looks complete was left behind."""

    def __init__(self, destination: Path | str, problem: str) -> None:
        self.destination = Path(destination)
        self.problem = problem
        super().__init__(f"{destination}: {problem}")
