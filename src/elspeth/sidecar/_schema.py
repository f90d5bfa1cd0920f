"""Argument validators for the operation table: every value a client sends passes one of these.

Validators are small composable functions ``(value, limits) -> normalised value`` that raise
:class:`ArgumentError` naming the path of the offending field (``items[3].digest``). The policy
table in :mod:`elspeth.sidecar._policy` combines them per operation, so every size and type rule
is visible in one place and applied the same way to every request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from elspeth.security._levels import SecurityLevel
from elspeth.sidecar._protocol import GRANT_ID_SIZE, MAC_SIZE

DIGEST_SIZE: Final = 32
FRAME_ID_PATTERN: Final = re.compile(r"[0-9a-f]{32}-[1-9][0-9]{0,18}")
_FRAME_ID_MATCH: Final = FRAME_ID_PATTERN.fullmatch
_HIGHEST_RANK: Final = max(level.rank for level in SecurityLevel)


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


Validator = Callable[[object, Limits], Any]


def _type_name(value: object) -> str:
    return type(value).__name__


def _fixed_bytes(size: int, what: str) -> Validator:
    def check(value: object, limits: Limits) -> bytes:
        if not isinstance(value, bytes):
            raise ArgumentError("", f"{what} must be a byte string, not {_type_name(value)}")
        if len(value) != size:
            raise ArgumentError("", f"{what} must be exactly {size} bytes, not {len(value)}")
        return value

    return check


digest = _fixed_bytes(DIGEST_SIZE, "a digest")
seal = _fixed_bytes(MAC_SIZE, "a seal")
mac = _fixed_bytes(MAC_SIZE, "a MAC")
grant_id = _fixed_bytes(GRANT_ID_SIZE, "a grant id")


def level_rank(value: object, limits: Limits) -> int:
    """A level as its wire rank; the daemon's lattice is the order of ranks, join is max."""
    if type(value) is not int:
        raise ArgumentError("", f"a level rank must be an integer, not {_type_name(value)}")
    if not 0 <= value <= _HIGHEST_RANK:
        raise ArgumentError("", f"level rank {value} is not one of 0 to {_HIGHEST_RANK}")
    return value


def frame_id(value: object, limits: Limits) -> str:
    if not isinstance(value, str):
        raise ArgumentError("", f"a frame id must be a text string, not {_type_name(value)}")
    if not _FRAME_ID_MATCH(value):
        raise ArgumentError("", "a frame id is 32 hex digits, a dash and a decimal counter")
    return value


def record(value: object, limits: Limits) -> bytes:
    if not isinstance(value, bytes):
        raise ArgumentError("", f"a record must be a byte string, not {_type_name(value)}")
    if len(value) > limits.max_record_bytes:
        raise ArgumentError(
            "", f"a record of {len(value)} bytes exceeds the limit of {limits.max_record_bytes}"
        )
    return value


class _Optional:
    """Marks a field that may be absent or null."""

    __slots__ = ("validator",)

    def __init__(self, validator: Validator) -> None:
        self.validator = validator

    def __call__(self, value: object, limits: Limits) -> Any:
        return None if value is None else self.validator(value, limits)


def optional(validator: Validator) -> Validator:
    return _Optional(validator)


def list_of(item: Validator, *, min_length: int = 1) -> Validator:
    """A list of ``min_length`` to ``limits.max_batch`` items, each checked by ``item``."""

    def check(value: object, limits: Limits) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise ArgumentError("", f"must be a list, not {_type_name(value)}")
        if not min_length <= len(value) <= limits.max_batch:
            raise ArgumentError(
                "", f"must hold {min_length} to {limits.max_batch} items, not {len(value)}"
            )
        checked = []
        for index, element in enumerate(value):
            try:
                checked.append(item(element, limits))
            except ArgumentError as exc:
                raise ArgumentError(_join(f"[{index}]", exc.path), _reason(exc)) from None
        return tuple(checked)

    return check


def fields(**spec: Validator) -> Validator:
    """A map with exactly these keys (optional ones may be missing); returns a plain dict."""
    required = frozenset(name for name, v in spec.items() if not isinstance(v, _Optional))
    allowed = frozenset(spec)

    def check(value: object, limits: Limits) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ArgumentError("", f"must be a map, not {_type_name(value)}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ArgumentError("", f"unknown field(s) {sorted(map(str, unknown))}")
        missing = required - value.keys()
        if missing:
            raise ArgumentError("", f"missing field(s) {sorted(missing)}")
        checked: dict[str, Any] = {}
        for name, validator in spec.items():
            try:
                checked[name] = validator(value.get(name), limits)
            except ArgumentError as exc:
                raise ArgumentError(_join(name, exc.path), _reason(exc)) from None
        return checked

    return check


def _join(head: str, tail: str) -> str:
    if not tail:
        return head
    return f"{head}{tail}" if tail.startswith("[") else f"{head}.{tail}"


def _reason(exc: ArgumentError) -> str:
    text = str(exc)
    return text[len(exc.path) + 2 :] if exc.path else text
