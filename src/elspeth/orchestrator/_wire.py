"""The worker RPC wire format: length-prefixed msgpack messages, checked against a table.

Both ends use this module: the worker before it loads any plugin (so it imports only ``struct``
and ``msgpack``, which start no threads), the orchestrator for every worker it serves. Every
message is a msgpack map with an ``op`` key; :data:`WORKER_BOUND` and :data:`ORCHESTRATOR_BOUND`
say, per direction, which ops exist and which fields each carries with which types. Anything else
is a :class:`ProtocolError`. ``docs/worker-rpc.md`` documents the same tables for readers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import msgpack

from elspeth.errors import ElspethError

PROTOCOL_VERSION: Final = 1
HEADER: Final = struct.Struct(">I")
"""Every message is a 4-byte big-endian body length, then that many bytes of msgpack."""

DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
"""Largest single message either side accepts: sized so a view part plus its envelope fits."""

MIN_MAX_MESSAGE_BYTES: Final = 64 * 1024
"""Below this not even a request for a small plugin with parameters would fit."""

_ENVELOPE_BYTES: Final = 1024
"""Room left in a message for the map around a payload part."""


class ProtocolError(ElspethError):
    """A message was malformed, oversized, unknown or out of turn; the channel is not trusted."""


class OversizedMessageError(ProtocolError):
    """A message announced a body larger than the agreed maximum."""


class ChannelClosedError(ProtocolError):
    """The other end closed the channel (the worker exited or the orchestrator went away)."""


# --- the message tables ------------------------------------------------------------------------

_Check = Callable[[object], bool]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _is_str(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 4096


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_bytes(value: object) -> bool:
    return isinstance(value, bytes)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and len(value) <= 4096 and all(_is_str(v) for v in value)


def _is_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _is_optional_str(value: object) -> bool:
    return value is None or _is_str(value)


def _is_optional_map(value: object) -> bool:
    return value is None or _is_map(value)


def _is_any(value: object) -> bool:
    return True


_PAYLOAD: Final = {"parts": _is_int, "size": _is_int}
"""Fields of a message followed by ``parts`` messages of op ``part`` holding ``size`` bytes."""

WORKER_BOUND: Final[Mapping[str, Mapping[str, _Check]]] = MappingProxyType(
    {
        "hello": {"protocol": _is_int, "max_message": _is_int, "sandbox": _is_map},
        "describe": {"id": _is_int, "plugin": _is_str, "params": _is_optional_map},
        "run": {
            "id": _is_int,
            "plugin": _is_str,
            "params": _is_map,
            "chunk": _is_str,
            "handles": _is_str_list,
        },
        "proxy_reply": {
            "seq": _is_int,
            "ok": _is_bool,
            "value": _is_any,
            "error": _is_optional_str,
            **_PAYLOAD,
        },
        "part": {"data": _is_bytes},
        "shutdown": {},
    }
)
"""Messages the orchestrator sends to a worker."""

ORCHESTRATOR_BOUND: Final[Mapping[str, Mapping[str, _Check]]] = MappingProxyType(
    {
        "ready": {"protocol": _is_int, "pid": _is_int, "sandbox": _is_map},
        "described": {
            "id": _is_int,
            "ok": _is_bool,
            "info": _is_optional_map,
            "error": _is_optional_str,
        },
        "proxy": {
            "seq": _is_int,
            "method": _is_str,
            "handle": _is_str,
            "args": _is_map,
            **_PAYLOAD,
        },
        "result": {"id": _is_int, "ok": _is_bool, "error": _is_optional_str},
        "part": {"data": _is_bytes},
        "error": {"kind": _is_str, "message": _is_str},
    }
)
"""Messages a worker sends to the orchestrator."""


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded, checked message: its op and its fields (``op`` removed)."""

    op: str
    fields: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


# --- encoding and decoding ---------------------------------------------------------------------


def encode(op: str, **fields: Any) -> bytes:
    """One framed message: header and msgpack body."""
    body: bytes = msgpack.packb({"op": op, **fields}, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def body_length(header: bytes | bytearray, max_message: int) -> int:
    """The body length a header announces, refused when above ``max_message``."""
    (length,) = HEADER.unpack(header)
    if length > max_message:
        raise OversizedMessageError(
            f"message of {length} bytes announced; the maximum is {max_message} bytes"
        )
    return int(length)


def decode(body: bytes | bytearray, table: Mapping[str, Mapping[str, _Check]]) -> Message:
    """Decode and check one message body against ``table`` (one direction's messages)."""
    try:
        raw = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as error:  # noqa: BLE001 - msgpack raises many types for bad bytes
        raise ProtocolError(f"message is not valid msgpack ({type(error).__name__})") from None
    if not isinstance(raw, dict):
        raise ProtocolError(f"message must be a map, not {type(raw).__name__}")
    op = raw.pop("op", None)
    if not isinstance(op, str):
        raise ProtocolError("message has no string 'op' field")
    fields = table.get(op)
    if fields is None:
        raise ProtocolError(f"unknown message op {op[:64]!r}; expected one of {sorted(table)}")
    if set(raw) != set(fields):
        missing = sorted(set(fields) - set(raw))
        extra = sorted(str(k)[:64] for k in set(raw) - set(fields))
        raise ProtocolError(f"message {op!r}: missing fields {missing}, unexpected fields {extra}")
    wrong = [name for name, check in fields.items() if not check(raw[name])]
    if wrong:
        raise ProtocolError(f"message {op!r}: fields of the wrong type or range: {sorted(wrong)}")
    return Message(op, raw)


# --- payloads: large bytes sent as a header message plus parts ----------------------------------


def part_size(max_message: int) -> int:
    """Bytes of payload per ``part`` message under a given maximum message size."""
    return max_message - _ENVELOPE_BYTES


def encode_with_payload(
    op: str, payload: bytes, max_message: int, **fields: Any
) -> Iterator[bytes]:
    """A header message announcing ``payload``, then the parts that carry it."""
    step = part_size(max_message)
    count = -(-len(payload) // step)
    yield encode(op, parts=count, size=len(payload), **fields)
    view = memoryview(payload)
    for start in range(0, len(payload), step):
        yield encode("part", data=view[start : start + step])


def collect_payload(
    header: Message, next_message: Callable[[], Message], max_payload: int
) -> bytes:
    """Read the parts announced by ``header``; their total must equal its ``size``."""
    size, parts = header["size"], header["parts"]
    if size > max_payload:
        raise OversizedMessageError(
            f"payload of {size} bytes announced; the maximum payload is {max_payload} bytes"
        )
    buffer = bytearray()
    for _ in range(parts):
        part = next_message()
        if part.op != "part":
            raise ProtocolError(f"expected a payload part, got {part.op!r}")
        buffer += part["data"]
        if len(buffer) > size:
            raise ProtocolError(f"payload parts exceed the announced {size} bytes")
    if len(buffer) != size:
        raise ProtocolError(f"payload parts hold {len(buffer)} bytes, {size} announced")
    return bytes(buffer)
