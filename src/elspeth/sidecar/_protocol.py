"""The sidecar wire protocol as pure functions: framing, messages, MACs, seals and grant ids.

Everything a second implementation must reproduce byte for byte lives here and is specified in
``docs/sidecar-protocol.md`` (whose test vectors the tests check against these functions).

Design choices worth knowing:

* Every MAC is HMAC-SHA256 over the CBOR encoding of a fixed-shape array whose items are only
  text strings, byte strings and unsigned integers. For such arrays every shortest-form CBOR
  encoder produces the same bytes (RFC 8949 §4.2.1), so no canonical map ordering is involved.
* Operation arguments and reply bodies travel as CBOR byte strings holding an encoded map (the
  COSE pattern): the MAC covers those exact bytes and the daemon only decodes arguments after the
  MAC has verified. Untrusted bytes meet nothing but the small envelope decoder.
* The decoder refuses every CBOR tag, indefinite lengths, duplicate keys and non-string map keys:
  the protocol needs none of them and each is an avoidable parser surface.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import cbor2

from elspeth.security._levels import SecurityLevel

PROTOCOL_VERSION: Final = 1
PROTOCOL_LABEL: Final = "elspeth-sidecar/1"
SEAL_LABEL: Final = "elspeth-seal/1"
GRANT_LABEL: Final = "elspeth-grant/1"
CHECKPOINT_LABEL: Final = "elspeth-checkpoint/1"

#: The highest level a daemon in standalone mode seals or checks: its own refusal, which the
#: orchestrator also applies to a suite's plan before anything runs.
STANDALONE_CEILING: Final = SecurityLevel.OFFICIAL_SENSITIVE

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 32
BOOT_ID_SIZE: Final = 16
MAC_SIZE: Final = 32
GRANT_RANDOM_SIZE: Final = 16
GRANT_TAG_SIZE: Final = 16
GRANT_ID_SIZE: Final = GRANT_RANDOM_SIZE + GRANT_TAG_SIZE

LENGTH_PREFIX: Final = struct.Struct(">I")
MAX_NESTING: Final = 6
"""Deepest container nesting any message needs (envelope > list > item > list), with margin."""

DIRECTION_GREETING: Final = "greet"
DIRECTION_REQUEST: Final = "req"
DIRECTION_REPLY: Final = "rep"
STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"


class ErrorCode(enum.StrEnum):
    """Every ``code`` a daemon may put in an error reply (documented in the protocol spec)."""

    BAD_FRAME = "bad_frame"
    BAD_REQUEST = "bad_request"
    BAD_MAC = "bad_mac"
    REPLAY = "replay"
    UNKNOWN_OP = "unknown_op"
    OUT_OF_PHASE = "out_of_phase"
    ONCE_ONLY = "once_only"
    UNKNOWN_GRANT = "unknown_grant"
    GRANT_EXPIRED = "grant_expired"
    UNKNOWN_FRAME = "unknown_frame"
    SEAL_INVALID = "seal_invalid"
    CHECKPOINT_INVALID = "checkpoint_invalid"
    LEVEL_REFUSED = "level_refused"
    DOWNGRADE_REFUSED = "downgrade_refused"
    LIMIT = "limit"
    INTERNAL = "internal"


CONNECTION_FATAL_CODES: Final = frozenset(
    {ErrorCode.BAD_FRAME, ErrorCode.BAD_MAC, ErrorCode.REPLAY}
)
"""After an error reply with one of these codes the daemon closes the connection."""

UNAUTHENTICATED_MESSAGES: Final = {
    ErrorCode.BAD_FRAME: "malformed frame",
    ErrorCode.BAD_MAC: "request MAC does not verify",
    ErrorCode.INTERNAL: "internal daemon error",
}
"""The only messages a reply to a request whose MAC has not verified may carry: fixed and short,
so nothing an unauthenticated peer sent is ever echoed back (or into the audit log)."""


class ProtocolViolation(Exception):
    """Bytes that are not a valid protocol message; ``code`` is the error code to answer with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- keyed MACs ----------------------------------------------------------------------------


class MacKey:
    """HMAC-SHA256 under one key, precomputed once and copied per message.

    The caller owns the key buffer (a bytearray it zeroes at exit); OpenSSL keeps its own copy
    inside the HMAC context, which is why the daemon is also made non-dumpable.
    """

    __slots__ = ("_base",)

    def __init__(self, key: bytes | bytearray) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"a MAC key must be {KEY_SIZE} bytes, not {len(key)}")
        base = hmac.new(key, digestmod=hashlib.sha256)
        # CPython's OpenSSL-backed HMAC wraps a C object with the same copy/update/digest API;
        # copying that directly skips a pure-Python layer on every message.
        self._base: Any = getattr(base, "_hmac", None) or base

    def mac(self, data: bytes) -> bytes:
        h = self._base.copy()
        h.update(data)
        digest: bytes = h.digest()
        return digest

    def verify(self, data: bytes, tag: object) -> bool:
        return isinstance(tag, bytes) and hmac.compare_digest(self.mac(data), tag)


# MAC inputs are CBOR arrays of fixed shape; they are assembled from pre-encoded constant parts
# and the few variable items (the same bytes cbor2.dumps of the list gives, as tests check),
# because they sit on the hot path of every request, reply and seal.


_SMALL_HEADS: Final = tuple(
    tuple(
        bytes((major << 5 | value,)) if value < 24 else bytes((major << 5 | 24, value))
        for value in range(0x100)
    )
    for major in range(8)
)
"""Heads of arguments below 256, the common case, looked up instead of built."""


def _head(major: int, value: int) -> bytes:
    """A CBOR initial byte and argument in preferred (shortest) form."""
    if value < 0x100:
        return _SMALL_HEADS[major][value]
    if value < 0x10000:
        return bytes((major << 5 | 25,)) + value.to_bytes(2, "big")
    if value < 0x100000000:
        return bytes((major << 5 | 26,)) + value.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + value.to_bytes(8, "big")


_UINT_HEADS: Final = _SMALL_HEADS[0]
_BYTES_HEADS: Final = _SMALL_HEADS[2]
_TEXT_HEADS: Final = _SMALL_HEADS[3]


def _uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("MAC inputs hold unsigned integers only")
    return _UINT_HEADS[value] if value < 0x100 else _head(0, value)


def _bytes(value: bytes) -> bytes:
    size = len(value)
    return (_BYTES_HEADS[size] if size < 0x100 else _head(2, size)) + value


def _text(value: str) -> bytes:
    encoded = value.encode("utf-8")
    size = len(encoded)
    return (_TEXT_HEADS[size] if size < 0x100 else _head(3, size)) + encoded


def _array(*encoded_items: bytes) -> bytes:
    return _head(4, len(encoded_items)) + b"".join(encoded_items)


def mac_input(*items: str | bytes | int) -> bytes:
    """The bytes a MAC covers: the CBOR array of ``items`` (text, bytes, unsigned ints only)."""
    return _array(
        *(
            _text(item)
            if isinstance(item, str)
            else _bytes(item)
            if isinstance(item, bytes)
            else _uint(item)
            for item in items
        )
    )


_REQUEST_PREFIX: Final = _head(4, 6) + _text(PROTOCOL_LABEL) + _text(DIRECTION_REQUEST)
_REPLY_PREFIX: Final = _head(4, 7) + _text(PROTOCOL_LABEL) + _text(DIRECTION_REPLY)
_SEAL_PREFIX: Final = _head(4, 4) + _text(SEAL_LABEL)


_REQUEST_MAP_HEAD: Final = _head(5, 4)
_REPLY_MAP_HEAD: Final = _head(5, 5)
_OP_KEY: Final = _text("op")
_SEQ_KEY: Final = _text("seq")
_ARGS_KEY: Final = _text("args")
_MAC_KEY: Final = _text("mac")
_STATUS_KEY: Final = _text("status")
_BODY_KEY: Final = _text("body")
_AUDIT_ID_KEY: Final = _text("audit_id")
_MAC_HEAD: Final = _head(2, MAC_SIZE)


def greeting_mac_input(greeting: Greeting) -> bytes:
    return mac_input(
        PROTOCOL_LABEL,
        DIRECTION_GREETING,
        greeting.version,
        greeting.nonce,
        greeting.boot_id,
        greeting.mode,
        greeting.max_frame_bytes,
        greeting.max_batch,
    )


def request_mac_input(nonce: bytes, seq: int, op: str, args: bytes) -> bytes:
    return b"".join((_REQUEST_PREFIX, _bytes(nonce), _uint(seq), _text(op), _bytes(args)))


def reply_mac_input(nonce: bytes, seq: int, status: str, audit_id: int, body: bytes) -> bytes:
    return b"".join(
        (_REPLY_PREFIX, _bytes(nonce), _uint(seq), _text(status), _uint(audit_id), _bytes(body))
    )


def seal_mac_input(frame_id: str, level_rank: int, digest: bytes) -> bytes:
    return b"".join((_SEAL_PREFIX, _text(frame_id), _uint(level_rank), _bytes(digest)))


def grant_mac_input(random_part: bytes, level_rank: int, digest: bytes, expires_ms: int) -> bytes:
    return mac_input(GRANT_LABEL, random_part, level_rank, digest, expires_ms)


def checkpoint_mac_input(record: bytes) -> bytes:
    return mac_input(CHECKPOINT_LABEL, record)


def frame_id_prefix(boot_id: bytes) -> str:
    """Frame ids are the boot id in lower-case hex, a dash and a decimal counter from 1."""
    return f"{boot_id.hex()}-"


def frame_id_for(boot_id: bytes, counter: int) -> str:
    return f"{frame_id_prefix(boot_id)}{counter}"


# --- framing -------------------------------------------------------------------------------


def frame(body: bytes) -> bytes:
    """Prefix ``body`` with its length (4 bytes, big-endian)."""
    return LENGTH_PREFIX.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into frame bodies; refuses a declared length above the limit."""

    __slots__ = ("_buffer", "_max_body")

    def __init__(self, max_body: int) -> None:
        self._buffer = bytearray()
        self._max_body = max_body

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete frame (or are not yet consumed)."""
        return len(self._buffer)

    def next_body(self) -> bytes | None:
        """The next complete body, or ``None`` until more bytes arrive."""
        buffer = self._buffer
        if len(buffer) < LENGTH_PREFIX.size:
            return None
        (length,) = LENGTH_PREFIX.unpack_from(buffer)
        if length > self._max_body:
            raise ProtocolViolation(
                ErrorCode.BAD_FRAME,
                f"frame of {length} bytes exceeds the limit of {self._max_body} bytes",
            )
        end = LENGTH_PREFIX.size + length
        if len(buffer) < end:
            return None
        body = bytes(buffer[LENGTH_PREFIX.size : end])
        del buffer[:end]
        return body


# --- decoding ------------------------------------------------------------------------------

_CBOR2_BUILTIN_TAGS: Final = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256)
_CBOR2_BUILTIN_TAGS_2: Final = (258, 260, 261, 1004, 55799)


def _refuse_semantic_tag(decoder: object) -> NoReturn:
    raise ValueError("CBOR tags are not part of the sidecar protocol")


def _refuse_tag(decoder: object, tag: object) -> NoReturn:
    raise ValueError("CBOR tags are not part of the sidecar protocol")


_REFUSE_ALL_SEMANTIC_TAGS: Final = dict.fromkeys(
    (*_CBOR2_BUILTIN_TAGS, *_CBOR2_BUILTIN_TAGS_2), _refuse_semantic_tag
)


def decode(body: bytes) -> object:
    """Decode one CBOR item with the protocol's restrictions, or raise ``bad_frame``."""
    try:
        return cbor2.loads(
            body,
            tag_hook=_refuse_tag,
            semantic_decoders=_REFUSE_ALL_SEMANTIC_TAGS,
            max_depth=MAX_NESTING,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolViolation(ErrorCode.BAD_FRAME, f"undecodable CBOR: {exc}") from None


def decode_map(body: bytes, what: str) -> dict[str, Any]:
    value = decode(body)
    if not isinstance(value, dict):
        raise ProtocolViolation(
            ErrorCode.BAD_REQUEST, f"{what} must be a CBOR map, not {type(value).__name__}"
        )
    return value


def encode(value: object) -> bytes:
    return cbor2.dumps(value)


def _exact_keys(message: Mapping[str, Any], keys: frozenset[str], what: str) -> None:
    if message.keys() != keys:
        missing = sorted(keys - message.keys())
        extra = sorted(str(k) for k in message.keys() - keys)
        raise ProtocolViolation(
            ErrorCode.BAD_FRAME, f"{what} fields wrong: missing {missing}, unexpected {extra}"
        )


def _is_uint(value: object) -> bool:
    return type(value) is int and value >= 0


# --- greeting ------------------------------------------------------------------------------

_GREETING_KEYS: Final = frozenset(
    {"v", "nonce", "boot", "mode", "max_frame_bytes", "max_batch", "mac"}
)


@dataclass(frozen=True, slots=True)
class Greeting:
    version: int
    nonce: bytes
    boot_id: bytes
    mode: str
    max_frame_bytes: int
    max_batch: int


def encode_greeting(key: MacKey, greeting: Greeting) -> bytes:
    mac = key.mac(greeting_mac_input(greeting))
    return encode(
        {
            "v": greeting.version,
            "nonce": greeting.nonce,
            "boot": greeting.boot_id,
            "mode": greeting.mode,
            "max_frame_bytes": greeting.max_frame_bytes,
            "max_batch": greeting.max_batch,
            "mac": mac,
        }
    )


def parse_greeting(key: MacKey, body: bytes) -> Greeting:
    """Decode and authenticate a greeting; ``bad_mac`` means a wrong key or an impostor."""
    message = decode_map(body, "greeting")
    _exact_keys(message, _GREETING_KEYS, "greeting")
    version, nonce, boot_id = message["v"], message["nonce"], message["boot"]
    mode, max_frame, max_batch = message["mode"], message["max_frame_bytes"], message["max_batch"]
    if not (
        _is_uint(version)
        and isinstance(nonce, bytes)
        and len(nonce) == NONCE_SIZE
        and isinstance(boot_id, bytes)
        and len(boot_id) == BOOT_ID_SIZE
        and isinstance(mode, str)
        and _is_uint(max_frame)
        and _is_uint(max_batch)
    ):
        raise ProtocolViolation(ErrorCode.BAD_FRAME, "greeting fields have wrong types or sizes")
    if version != PROTOCOL_VERSION:
        raise ProtocolViolation(
            ErrorCode.BAD_FRAME,
            f"daemon speaks protocol version {version}, this client speaks {PROTOCOL_VERSION}",
        )
    greeting = Greeting(version, nonce, boot_id, mode, max_frame, max_batch)
    if not key.verify(greeting_mac_input(greeting), message["mac"]):
        raise ProtocolViolation(ErrorCode.BAD_MAC, "greeting MAC does not verify")
    return greeting


# --- requests ------------------------------------------------------------------------------

_REQUEST_KEYS: Final = frozenset({"op", "seq", "args", "mac"})


@dataclass(frozen=True, slots=True)
class RequestEnvelope:
    """A request whose shape is valid; its MAC and sequence number are not yet checked."""

    op: str
    seq: int
    args: bytes
    mac: bytes


def encode_request(key: MacKey, nonce: bytes, seq: int, op: str, args: Mapping[str, Any]) -> bytes:
    seq_item, op_item, args_item = _uint(seq), _text(op), _bytes(encode(dict(args)))
    mac = key.mac(b"".join((_REQUEST_PREFIX, _bytes(nonce), seq_item, op_item, args_item)))
    # The same bytes cbor2 gives for {"op", "seq", "args", "mac"} in that order (the test vectors
    # check it); assembled here so the items encoded for the MAC are not encoded twice.
    return b"".join(
        (
            *(_REQUEST_MAP_HEAD, _OP_KEY, op_item, _SEQ_KEY, seq_item, _ARGS_KEY, args_item),
            *(_MAC_KEY, _MAC_HEAD, mac),
        )
    )


def parse_request_envelope(body: bytes) -> RequestEnvelope:
    message = decode(body)
    if not isinstance(message, dict):
        raise ProtocolViolation(
            ErrorCode.BAD_FRAME, f"a request must be a CBOR map, not {type(message).__name__}"
        )
    _exact_keys(message, _REQUEST_KEYS, "request")
    op, seq, args, mac = message["op"], message["seq"], message["args"], message["mac"]
    if not (isinstance(op, str) and len(op) <= 64):
        raise ProtocolViolation(ErrorCode.BAD_FRAME, "request op must be a text string")
    if not (_is_uint(seq) and seq < 2**63):
        raise ProtocolViolation(ErrorCode.BAD_FRAME, "request seq must be an unsigned integer")
    if not isinstance(args, bytes):
        raise ProtocolViolation(ErrorCode.BAD_FRAME, "request args must be a CBOR byte string")
    if not (isinstance(mac, bytes) and len(mac) == MAC_SIZE):
        raise ProtocolViolation(ErrorCode.BAD_FRAME, f"request mac must be {MAC_SIZE} bytes")
    return RequestEnvelope(op, seq, args, mac)


# --- replies -------------------------------------------------------------------------------

_REPLY_KEYS: Final = frozenset({"seq", "status", "body", "audit_id", "mac"})


@dataclass(frozen=True, slots=True)
class Reply:
    seq: int
    status: str
    body: dict[str, Any]
    audit_id: int


def encode_reply(
    key: MacKey, nonce: bytes, seq: int, *, status: str, body: Mapping[str, Any], audit_id: int
) -> bytes:
    seq_item, status_item, audit_item = _uint(seq), _text(status), _uint(audit_id)
    body_item = _bytes(encode(dict(body)))
    mac = key.mac(
        b"".join((_REPLY_PREFIX, _bytes(nonce), seq_item, status_item, audit_item, body_item))
    )
    # The bytes cbor2 gives for {"seq", "status", "body", "audit_id", "mac"} in that order.
    return b"".join(
        (
            *(_REPLY_MAP_HEAD, _SEQ_KEY, seq_item, _STATUS_KEY, status_item, _BODY_KEY, body_item),
            *(_AUDIT_ID_KEY, audit_item, _MAC_KEY, _MAC_HEAD, mac),
        )
    )


def error_body(code: ErrorCode, message: str, **details: Any) -> dict[str, Any]:
    return {"code": str(code), "message": message, **details}


def parse_reply(key: MacKey, nonce: bytes, body: bytes) -> Reply:
    """Decode and authenticate a reply; a reply that fails its MAC comes from an impostor."""
    message = decode_map(body, "reply")
    _exact_keys(message, _REPLY_KEYS, "reply")
    seq, status, encoded, audit_id = (
        message["seq"],
        message["status"],
        message["body"],
        message["audit_id"],
    )
    if not (
        _is_uint(seq)
        and status in (STATUS_OK, STATUS_ERROR)
        and isinstance(encoded, bytes)
        and _is_uint(audit_id)
    ):
        raise ProtocolViolation(ErrorCode.BAD_FRAME, "reply fields have wrong types")
    if not key.verify(reply_mac_input(nonce, seq, status, audit_id, encoded), message["mac"]):
        raise ProtocolViolation(ErrorCode.BAD_MAC, "reply MAC does not verify")
    return Reply(seq, status, decode_map(encoded, "reply body"), audit_id)
