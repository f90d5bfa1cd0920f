"""The worker RPC wire format: length-prefixed msgpack messages, checked against a table.

Both ends use this module: the worker before it loads any plugin (so it imports only ``struct``
and ``msgpack``, which start no threads), the orchestrator for every worker it serves. Every
message is a msgpack map with an ``op`` key; :data:`WORKER_BOUND` and :data:`ORCHESTRATOR_BOUND`
say, per direction, which ops exist, which fields each carries with which types, in which
:class:`Phase` of the session it may come, whether once or many times, and the phase it leads to.
A :class:`Conversation` checks the order on both ends. Anything else is a
:class:`ProtocolError`. The ops with a ``size`` field (:data:`PAYLOAD_FIELD`) are followed by
that many raw bytes (an Arrow IPC stream), read straight into memory allocated for them once the
size has passed its cap (the orchestrator reads them itself, judging the stream's headers
first: :mod:`elspeth.orchestrator._runtime._ipc_stream`). ``docs/worker-rpc.md`` documents the
same tables for readers.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import msgpack

from elspeth.errors import ElspethError

PROTOCOL_VERSION: Final = 2
HEADER: Final = struct.Struct(">I")
"""Every message is a 4-byte big-endian body length, then that many bytes of msgpack."""

DEFAULT_MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
"""Largest message body either side accepts. Messages carry only control data (requests,
parameters, metadata); data travels as payloads, which have their own cap."""

MIN_MAX_MESSAGE_BYTES: Final = 64 * 1024
"""Below this not even a request for a small plugin with parameters would fit."""

Buffer: TypeAlias = bytes | bytearray | memoryview
ReadInto: TypeAlias = Callable[[memoryview], None]
"""Fills the whole view from the channel, or raises :class:`ChannelClosedError`."""
Allocate: TypeAlias = Callable[[int], memoryview]
"""Writable memory of exactly the size asked for, to read a payload into."""


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


PAYLOAD_FIELD: Final = "size"
"""A message whose op has this field is followed on the stream by exactly that many raw bytes."""

_PAYLOAD: Final = {PAYLOAD_FIELD: _is_int}


class Phase(enum.Enum):
    """Where one worker's session stands; both ends track it from the messages either way."""

    START = "start"
    """Spawned: the orchestrator has sent nothing yet."""
    HELLO = "hello"
    """``hello`` sent, ``ready`` not yet: the worker is hardening itself."""
    IDLE = "idle"
    """Between calls."""
    WARM = "warm"
    """A ``warm`` is being answered: the worker makes the imports every call needs."""
    DESCRIBE = "describe"
    """A ``describe`` is being answered."""
    RUN = "run"
    """A ``run`` is executing plugin code, no proxy call outstanding."""
    PROXY = "proxy"
    """The plugin waits for the answer to its ``proxy`` call."""
    CLOSED = "closed"
    """``shutdown`` or ``error`` sent: nothing more may follow."""


ONCE: Final = "once"
MANY: Final = "many"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of a message table: the fields the op carries, the phases it may arrive in,
    whether it may be sent once or many times per session, and the phase it leads to."""

    fields: Mapping[str, _Check]
    phases: frozenset[Phase]
    times: str
    then: Phase


def _rule(fields: Mapping[str, _Check], phases: set[Phase], times: str, then: Phase) -> Rule:
    return Rule(MappingProxyType(dict(fields)), frozenset(phases), times, then)


_P = Phase

WORKER_BOUND: Final[Mapping[str, Rule]] = MappingProxyType(
    {
        "hello": _rule(
            {"protocol": _is_int, "max_message": _is_int, "sandbox": _is_map},
            {_P.START},
            ONCE,
            _P.HELLO,
        ),
        "warm": _rule({}, {_P.IDLE}, ONCE, _P.WARM),
        "describe": _rule(
            {"id": _is_int, "plugin": _is_str, "params": _is_optional_map},
            {_P.IDLE},
            MANY,
            _P.DESCRIBE,
        ),
        "run": _rule(
            {
                "id": _is_int,
                "plugin": _is_str,
                "params": _is_map,
                "chunk": _is_str,
                "handles": _is_str_list,
            },
            {_P.IDLE},
            MANY,
            _P.RUN,
        ),
        "proxy_reply": _rule(
            {
                "seq": _is_int,
                "ok": _is_bool,
                "value": _is_any,
                "error": _is_optional_str,
                **_PAYLOAD,
            },
            {_P.PROXY},
            MANY,
            _P.RUN,
        ),
        "shutdown": _rule({}, {_P.IDLE}, ONCE, _P.CLOSED),
    }
)
"""Messages the orchestrator sends to a worker."""

ORCHESTRATOR_BOUND: Final[Mapping[str, Rule]] = MappingProxyType(
    {
        "ready": _rule(
            {"protocol": _is_int, "pid": _is_int, "sandbox": _is_map}, {_P.HELLO}, ONCE, _P.IDLE
        ),
        "warmed": _rule({}, {_P.WARM}, ONCE, _P.IDLE),
        "described": _rule(
            {"id": _is_int, "ok": _is_bool, "info": _is_optional_map, "error": _is_optional_str},
            {_P.DESCRIBE},
            MANY,
            _P.IDLE,
        ),
        "proxy": _rule(
            {
                "seq": _is_int,
                "method": _is_str,
                "handle": _is_str,
                "args": _is_map,
                **_PAYLOAD,
            },
            {_P.RUN},
            MANY,
            _P.PROXY,
        ),
        "result": _rule(
            {"id": _is_int, "ok": _is_bool, "error": _is_optional_str}, {_P.RUN}, MANY, _P.IDLE
        ),
        # The worker's last word, from wherever it found the orchestrator's input unacceptable.
        "error": _rule(
            {"kind": _is_str, "message": _is_str},
            {_P.HELLO, _P.IDLE, _P.WARM, _P.DESCRIBE, _P.RUN},
            ONCE,
            _P.CLOSED,
        ),
    }
)
"""Messages a worker sends to the orchestrator."""


class OutOfPhaseError(ProtocolError):
    """A well-formed message arrived (or was about to be sent) where its table row forbids it."""


class Conversation:
    """One session's phase, advanced by every message either way: the only place the order of
    messages is checked. Each end checks what it receives (the other end may be hostile, or
    broken) and what it sends (a bug of its own must not reach the wire)."""

    __slots__ = ("_inbound", "_outbound", "_sent_once", "phase")

    def __init__(self, inbound: Mapping[str, Rule], outbound: Mapping[str, Rule]) -> None:
        self._inbound = inbound
        self._outbound = outbound
        self._sent_once: set[str] = set()
        self.phase = Phase.START

    @classmethod
    def worker_side(cls) -> Conversation:
        return cls(WORKER_BOUND, ORCHESTRATOR_BOUND)

    @classmethod
    def orchestrator_side(cls) -> Conversation:
        return cls(ORCHESTRATOR_BOUND, WORKER_BOUND)

    def received(self, op: str) -> None:
        self._advance(op, self._inbound[op], "received")

    def sending(self, op: str) -> None:
        self._advance(op, self._outbound[op], "sent")

    def _advance(self, op: str, rule: Rule, verb: str) -> None:
        # Op names are distinct across the two tables, so one set serves both directions.
        if rule.times == ONCE and op in self._sent_once:
            raise OutOfPhaseError(f"message {op!r} {verb} twice; it may be sent once per session")
        if self.phase not in rule.phases:
            allowed = ", ".join(sorted(phase.value for phase in rule.phases))
            raise OutOfPhaseError(
                f"message {op!r} {verb} in phase {self.phase.value!r}; it is allowed only in "
                f"phase {allowed}"
            )
        if rule.times == ONCE:
            self._sent_once.add(op)
        self.phase = rule.then


NO_PAYLOAD: Final = memoryview(b"")


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded, checked message: its op, its fields (``op`` removed) and, for the ops that
    carry one, the payload that followed it (empty for the others)."""

    op: str
    fields: Mapping[str, Any]
    payload: memoryview = NO_PAYLOAD

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


def decode(body: bytes | bytearray, table: Mapping[str, Rule]) -> Message:
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
    rule = table.get(op)
    if rule is None:
        raise ProtocolError(f"unknown message op {op[:64]!r}; expected one of {sorted(table)}")
    fields = rule.fields
    if set(raw) != set(fields):
        missing = sorted(set(fields) - set(raw))
        extra = sorted(str(k)[:64] for k in set(raw) - set(fields))
        raise ProtocolError(f"message {op!r}: missing fields {missing}, unexpected fields {extra}")
    wrong = [name for name, check in fields.items() if not check(raw[name])]
    if wrong:
        raise ProtocolError(f"message {op!r}: fields of the wrong type or range: {sorted(wrong)}")
    return Message(op, raw)


# --- payloads: raw bytes straight after the message that announces them ---------------------


def payload_size(announced: int, max_payload: int) -> int:
    """The payload size a message announces, refused when above ``max_payload``."""
    if announced > max_payload:
        raise OversizedMessageError(
            f"payload of {announced} bytes announced; the payload limit is {max_payload} bytes"
        )
    return announced


def frames_with_payload(op: str, payload: Buffer, **fields: Any) -> tuple[bytes, memoryview]:
    """The message announcing ``payload`` (its ``size`` field), then the payload, uncopied."""
    raw = memoryview(payload).cast("B")
    return encode(op, **{PAYLOAD_FIELD: raw.nbytes}, **fields), raw


def read_message(
    read_into: ReadInto,
    table: Mapping[str, Rule],
    *,
    max_message: int,
    max_payload: int,
    allocate: Allocate,
    conversation: Conversation | None,
) -> Message:
    """Read one message and, when its op carries one, its payload; every size is checked before
    anything of that size is allocated."""
    message = read_control(
        read_into,
        table,
        max_message=max_message,
        max_payload=max_payload,
        conversation=conversation,
    )
    if PAYLOAD_FIELD not in table[message.op].fields:
        return message
    payload = allocate(message[PAYLOAD_FIELD])
    read_into(payload)
    return Message(message.op, message.fields, payload)


def read_control(
    read_into: ReadInto,
    table: Mapping[str, Rule],
    *,
    max_message: int,
    max_payload: int,
    conversation: Conversation | None,
) -> Message:
    """Read one message without its payload: a receiver that judges a payload before reading it
    reads the announced ``size`` (already checked against ``max_payload``) itself. The message's
    phase is checked by ``conversation`` before its payload is read (``None``: decoding only, for
    readers of recorded streams)."""
    header = bytearray(HEADER.size)
    read_into(memoryview(header))
    body = bytearray(body_length(header, max_message))
    read_into(memoryview(body))
    message = decode(body, table)
    if conversation is not None:
        conversation.received(message.op)
    if PAYLOAD_FIELD in table[message.op].fields:
        payload_size(message[PAYLOAD_FIELD], max_payload)
    return message


def allocate_bytearray(size: int) -> memoryview:
    """The allocator that needs no data library: zero-filled memory from the Python heap."""
    return memoryview(bytearray(size))
