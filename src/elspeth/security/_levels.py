"""The security-level lattice: a total order of five levels, its join and the read-up rule."""

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
    def from_rank(cls, rank: object) -> SecurityLevel:
        """Decode a level from its rank: the one way a rank from the wire (untrusted input: the
        daemon's requests, its replies) becomes a level. Anything but a plain ``int`` in range
        (a bool, a float, an int subclass) raises :class:`LevelParseError`."""
        if type(rank) is not int:
            raise LevelParseError(f"a level rank must be an integer, not {type(rank).__name__}")
        if not 0 <= rank < len(_BY_RANK):
            raise LevelParseError(f"level rank {rank} is not one of 0 to {len(_BY_RANK) - 1}")
        return _BY_RANK[rank]


_BY_RANK: Final = tuple(sorted(SecurityLevel, key=lambda level: level.rank))


def accepted_level_names() -> str:
    """The accepted level names, lowest first, for error messages and docs."""
    return ", ".join(level.name for level in SecurityLevel)


def may_read(clearance: SecurityLevel, level: SecurityLevel) -> bool:
    """The read-up rule: a component cleared to ``clearance`` may read data at ``level`` only if
    ``level`` is no higher. Every clearance decision (the plan, the runtime, frames, sinks, the
    daemon's ceiling) calls this one function, so the rule cannot drift between its copies:
    ``tests/security/test_read_rule.py`` finds any comparison of a clearance written elsewhere."""
    return level <= clearance


def join(first: SecurityLevel, *others: SecurityLevel) -> SecurityLevel:
    """The least upper bound: the level of data derived from all the given inputs."""
    return max((first, *others), key=lambda level: level.rank)


def join_all(levels: Iterable[SecurityLevel]) -> SecurityLevel:
    """:func:`join` over an iterable; an empty iterable is an error, never a default."""
    materialised = tuple(levels)
    if not materialised:
        raise ValueError("join_all needs at least one level; there is no default level")
    return join(*materialised)
