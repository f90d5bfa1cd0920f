"""Argument validators for the operation table: every value a client sends passes one of these.

Validators are small composable objects that raise :class:`ArgumentError` naming the path of the
offending field (``items[3].digest``). The policy table in :mod:`elspeth.sidecar._daemon._policy`
combines them per operation, so every size and type rule is visible in one place and applied the
same way to every request.

Each validator has two halves. :meth:`Validator.check` validates one value and says exactly what
is wrong. :meth:`Validator.accepts_all` checks a whole column of values (every ``digest`` of a
batch at once) with C-level ``map``/``set`` passes, and can only accept: when it answers no, the
value goes through ``check``, which produces the refusal. Lists use the column check first, so
a batch of thousands of fixed-shape items is validated without a Python call per field per item,
and every refusal is the same one ``check`` alone would give. (A single value goes straight to
``check``, which is cheaper than building columns of one.)
"""

from __future__ import annotations

import abc
import functools
import itertools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from elspeth.security._errors import LevelParseError
from elspeth.security._levels import SecurityLevel
from elspeth.sidecar._protocol import GRANT_ID_SIZE, MAC_SIZE

DIGEST_SIZE: Final = 32
FRAME_ID_PATTERN: Final = re.compile(r"[0-9a-f]{32}-[1-9][0-9]{0,18}")
_FRAME_ID_MATCH: Final = FRAME_ID_PATTERN.fullmatch
_RANKS: Final = frozenset(level.rank for level in SecurityLevel)
_ONLY_BYTES: Final = frozenset({bytes})
_ONLY_INT: Final = frozenset({int})
_ONLY_STR: Final = frozenset({str})
_ONLY_LIST: Final = frozenset({list})
_ONLY_DICT: Final = frozenset({dict})
_is_not_none: Final = functools.partial(operator.is_not, None)


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured bounds validators enforce."""

    max_batch: int
    max_record_bytes: int


class ArgumentError(Exception):
    """An argument has the wrong type, size or shape; ``path`` names it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class Validator(abc.ABC):
    """One argument rule; call it to validate a value."""

    __slots__ = ()

    def __call__(self, value: object, limits: Limits) -> Any:
        """The value if valid (optional fields filled in with ``None``), else ArgumentError."""
        return self.check(value, limits)

    @abc.abstractmethod
    def check(self, value: object, limits: Limits) -> Any:
        """Validate one value; raise :class:`ArgumentError` saying what is wrong."""

    @abc.abstractmethod
    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        """``True`` only if ``check`` would return every value unchanged; never raises.

        ``False`` may also mean "not sure" (a map missing an optional key): ``check`` decides.
        """


def _type_name(value: object) -> str:
    return type(value).__name__


def _all_of_type(values: Sequence[Any], types: frozenset[type]) -> bool:
    return set(map(type, values)) <= types


class _FixedBytes(Validator):
    __slots__ = ("_size", "_sizes", "_what")

    def __init__(self, size: int, what: str) -> None:
        self._size = size
        self._sizes = frozenset({size})
        self._what = what

    def check(self, value: object, limits: Limits) -> bytes:
        if not isinstance(value, bytes):
            raise ArgumentError("", f"{self._what} must be a byte string, not {_type_name(value)}")
        if len(value) != self._size:
            raise ArgumentError(
                "", f"{self._what} must be exactly {self._size} bytes, not {len(value)}"
            )
        return value

    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        return _all_of_type(values, _ONLY_BYTES) and set(map(len, values)) <= self._sizes


digest: Final = _FixedBytes(DIGEST_SIZE, "a digest")
seal: Final = _FixedBytes(MAC_SIZE, "a seal")
mac: Final = _FixedBytes(MAC_SIZE, "a MAC")
grant_id: Final = _FixedBytes(GRANT_ID_SIZE, "a grant id")


class _LevelRank(Validator):
    """A level as its wire rank; the daemon's lattice is the order of ranks, join is max.

    Decoded by :meth:`SecurityLevel.from_rank`, the one rank decoder; the daemon keeps the rank.
    """

    __slots__ = ()

    def check(self, value: object, limits: Limits) -> int:
        try:
            return SecurityLevel.from_rank(value).rank
        except LevelParseError as error:
            raise ArgumentError("", str(error)) from None

    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        # Only a fast yes: exact ints (no bools) that are ranks; ``check`` words any refusal.
        return _all_of_type(values, _ONLY_INT) and set(values) <= _RANKS


level_rank: Final = _LevelRank()


class _FrameId(Validator):
    __slots__ = ()

    def check(self, value: object, limits: Limits) -> str:
        if not isinstance(value, str):
            raise ArgumentError("", f"a frame id must be a text string, not {_type_name(value)}")
        if not _FRAME_ID_MATCH(value):
            raise ArgumentError("", "a frame id is 32 hex digits, a dash and a decimal counter")
        return value

    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        return _all_of_type(values, _ONLY_STR) and all(map(_FRAME_ID_MATCH, values))


frame_id: Final = _FrameId()


class _Record(Validator):
    __slots__ = ()

    def check(self, value: object, limits: Limits) -> bytes:
        if not isinstance(value, bytes):
            raise ArgumentError("", f"a record must be a byte string, not {_type_name(value)}")
        if len(value) > limits.max_record_bytes:
            raise ArgumentError(
                "",
                f"a record of {len(value)} bytes exceeds the limit of {limits.max_record_bytes}",
            )
        return value

    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        return (
            _all_of_type(values, _ONLY_BYTES)
            and max(map(len, values), default=0) <= limits.max_record_bytes
        )


record: Final = _Record()


class _Optional(Validator):
    """Marks a field that may be absent or null."""

    __slots__ = ("validator",)

    def __init__(self, validator: Validator) -> None:
        self.validator = validator

    def check(self, value: object, limits: Limits) -> Any:
        return None if value is None else self.validator.check(value, limits)

    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        return self.validator.accepts_all(list(filter(_is_not_none, values)), limits)


def optional(validator: Validator) -> Validator:
    return _Optional(validator)


class _ListOf(Validator):
    """A list of ``min_length`` to ``limits.max_batch`` items, each checked by ``item``."""

    __slots__ = ("_item", "_min_length")

    def __init__(self, item: Validator, min_length: int) -> None:
        self._item = item
        self._min_length = min_length

    def check(self, value: object, limits: Limits) -> list[Any]:
        if not isinstance(value, list):
            raise ArgumentError("", f"must be a list, not {_type_name(value)}")
        if not self._min_length <= len(value) <= limits.max_batch:
            raise ArgumentError(
                "", f"must hold {self._min_length} to {limits.max_batch} items, not {len(value)}"
            )
        if self._item.accepts_all(value, limits):
            return value
        checked = []
        for index, element in enumerate(value):
            try:
                checked.append(self._item.check(element, limits))
            except ArgumentError as exc:
                raise ArgumentError(_join(f"[{index}]", exc.path), _reason(exc)) from None
        return checked

    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        if not _all_of_type(values, _ONLY_LIST):
            return False
        lengths = set(map(len, values))
        if lengths and not (self._min_length <= min(lengths) and max(lengths) <= limits.max_batch):
            return False
        return self._item.accepts_all(list(itertools.chain.from_iterable(values)), limits)


def list_of(item: Validator, *, min_length: int = 1) -> Validator:
    return _ListOf(item, min_length)


class _Fields(Validator):
    """A map with exactly these keys (optional ones may be missing); returns a plain dict."""

    __slots__ = ("_allowed", "_required", "_spec")

    def __init__(self, spec: dict[str, Validator]) -> None:
        self._spec = spec
        self._required = frozenset(name for name, v in spec.items() if not isinstance(v, _Optional))
        self._allowed = frozenset(spec)

    def check(self, value: object, limits: Limits) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ArgumentError("", f"must be a map, not {_type_name(value)}")
        unknown = [k for k in value if k not in self._allowed]
        if unknown:
            raise ArgumentError("", f"unknown field(s) {sorted(map(str, unknown))}")
        missing = self._required - value.keys()
        if missing:
            raise ArgumentError("", f"missing field(s) {sorted(missing)}")
        checked: dict[str, Any] = {}
        for name, validator in self._spec.items():
            try:
                checked[name] = validator.check(value.get(name), limits)
            except ArgumentError as exc:
                raise ArgumentError(_join(name, exc.path), _reason(exc)) from None
        return checked

    def accepts_all(self, values: Sequence[Any], limits: Limits) -> bool:
        if not _all_of_type(values, _ONLY_DICT):
            return False
        # Every key present, optional ones too: only then is the map already what check returns.
        if not all(map(operator.eq, map(dict.keys, values), itertools.repeat(self._allowed))):
            return False
        return all(
            validator.accepts_all(list(map(operator.itemgetter(name), values)), limits)
            for name, validator in self._spec.items()
        )


def fields(**spec: Validator) -> Validator:
    return _Fields(spec)


def _join(head: str, tail: str) -> str:
    if not tail:
        return head
    return f"{head}{tail}" if tail.startswith("[") else f"{head}.{tail}"


def _reason(exc: ArgumentError) -> str:
    text = str(exc)
    return text[len(exc.path) + 2 :] if exc.path else text


certificate: Final = fields(frame_id=frame_id, level=level_rank, digest=digest, seal=seal)
"""A frame certificate as it travels: what ``verify_seal`` takes and ``derive`` returns."""
