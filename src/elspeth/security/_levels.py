"""The security-level lattice: a total order of five levels, with join as its only operation."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Final

from elspeth.security._errors import LevelParseError

_SEPARATORS: Final = re.compile(r"[\s:_\-]+")


class SecurityLevel(enum.Enum):
    """A classification level, from least to most sensitive.

    Levels compare by sensitivity (``OFFICIAL < SECRET``). They are deliberately not integers:
    the only algebra is the ordering and :func:`join`, so no code can compute ``level - 1``.
    """

    UNOFFICIAL = 0
    OFFICIAL = 1
    OFFICIAL_SENSITIVE = 2
    PROTECTED = 3
    SECRET = 4

    @property
    def rank(self) -> int:
        """Position in the order, for serialization; never do arithmetic on it."""
        return int(self.value)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SecurityLevel):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, SecurityLevel):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, SecurityLevel):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, SecurityLevel):
            return NotImplemented
        return self.rank >= other.rank

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str | SecurityLevel) -> SecurityLevel:
        """Parse a level from its usual spellings, in any case.

        ``"OFFICIAL: SENSITIVE"``, ``"official_sensitive"``, ``"Official-Sensitive"`` and
        ``"OFFICIAL SENSITIVE"`` all name :attr:`OFFICIAL_SENSITIVE`. An empty or unknown string
        raises :class:`LevelParseError` naming the accepted values: there is no default level.
        """
        if isinstance(text, SecurityLevel):
            return text
        if not isinstance(text, str):
            raise LevelParseError(
                f"a security level must be a string, not {type(text).__name__}; "
                f"accepted values: {accepted_level_names()}"
            )
        key = _SEPARATORS.sub("_", text.strip()).strip("_").upper()
        if not key:
            raise LevelParseError(
                f"security level is empty; accepted values: {accepted_level_names()}"
            )
        try:
            return cls[key]
        except KeyError:
            raise LevelParseError(
                f"unknown security level {text!r}; accepted values: {accepted_level_names()}"
            ) from None

    @classmethod
    def from_rank(cls, rank: int) -> SecurityLevel:
        """Decode a level from its rank (wire formats); unknown ranks are errors."""
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise LevelParseError(f"a level rank must be an integer, not {type(rank).__name__}")
        for level in cls:
            if level.rank == rank:
                return level
        raise LevelParseError(f"unknown security level rank {rank}; accepted ranks: 0 to 4")


def accepted_level_names() -> str:
    """The accepted level names, lowest first, for error messages and docs."""
    return ", ".join(level.name for level in SecurityLevel)


def join(first: SecurityLevel, *others: SecurityLevel) -> SecurityLevel:
    """The least upper bound: the level of data derived from all the given inputs."""
    return max((first, *others), key=lambda level: level.rank)


def join_all(levels: Iterable[SecurityLevel]) -> SecurityLevel:
    """:func:`join` over an iterable; an empty iterable is an error, never a default."""
    materialised = tuple(levels)
    if not materialised:
        raise ValueError("join_all needs at least one level; there is no default level")
    return join(*materialised)
