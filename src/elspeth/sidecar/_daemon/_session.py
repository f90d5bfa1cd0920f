"""One connection's protocol state: greeting, MAC and sequence checks, dispatch; no I/O.

The order of checks is part of the security design: envelope shape, then the MAC (nothing a
client chose is trusted before it), then the sequence number (an authentic but stale request is
a replay), then the operation, its phase and times, and its arguments through the policy table
(:func:`~elspeth.sidecar._daemon._policy.admit` decides the order), then the handler.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from elspeth.sidecar._daemon._audit import AuditRecord, connection_json
from elspeth.sidecar._daemon._engine import Refusal, SealEngine
from elspeth.sidecar._daemon._policy import OPERATIONS, Phase, Times, admit
from elspeth.sidecar._protocol import (
    CONNECTION_FATAL_CODES,
    NONCE_SIZE,
    PROTOCOL_VERSION,
    STATUS_ERROR,
    STATUS_OK,
    UNAUTHENTICATED_MESSAGES,
    ErrorCode,
    Greeting,
    MacKey,
    ProtocolViolation,
    decode_map,
    encode_greeting,
    encode_reply,
    error_body,
    frame,
    parse_request_envelope,
    request_mac_input,
)
from elspeth.sidecar._schema import ArgumentError, Limits

_log = logging.getLogger("elspeth.sidecar")


@dataclass(frozen=True, slots=True)
class Peer:
    """The connecting process as the kernel reports it (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do after one request: send ``reply`` (already framed), maybe close, audit."""

    reply: bytes
    close: bool
    audit: AuditRecord
    unauthenticated: bool = False
    """The request's MAC did not verify (or it never formed a request): its audit record may be
    folded into a rate-limited summary; its counters never are."""


class Session:
    """Protocol state for one accepted connection."""

    __slots__ = (
        "_asked_once",
        "_connection_json",
        "_engine",
        "_key",
        "_limits",
        "_max_frame_bytes",
        "_next_seq",
        "authenticated",
        "connection_id",
        "nonce",
        "peer",
    )

    def __init__(
        self,
        engine: SealEngine,
        key: MacKey,
        limits: Limits,
        *,
        max_frame_bytes: int,
        connection_id: int,
        peer: Peer,
        nonce: bytes | None = None,
    ) -> None:
        self._engine = engine
        self._key = key
        self._limits = limits
        self._max_frame_bytes = max_frame_bytes
        self._next_seq = 1
        self._asked_once: set[str] = set()
        self.authenticated = False
        """True once one request on this connection has passed the MAC and sequence checks."""
        self.connection_id = connection_id
        self.peer = peer
        self.nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
        self._connection_json = connection_json(connection_id, peer.uid, peer.pid)

    def greeting(self) -> bytes:
        greeting = Greeting(
            version=PROTOCOL_VERSION,
            nonce=self.nonce,
            boot_id=self._engine.boot_id,
            mode=self._engine.mode,
            max_frame_bytes=self._max_frame_bytes,
            max_batch=self._limits.max_batch,
        )
        return frame(encode_greeting(self._key, greeting))

    def handle(self, body: bytes) -> Outcome:
        """Answer one request body; never raises."""
        engine = self._engine
        engine.counters.requests += 1
        audit_id = engine.next_audit_id()
        seq, op = 0, None
        verified = False
        try:
            envelope = parse_request_envelope(body)
            seq, op = envelope.seq, envelope.op
            if not self._key.verify(
                request_mac_input(self.nonce, seq, op, envelope.args), envelope.mac
            ):
                engine.counters.bad_macs += 1
                raise Refusal(
                    ErrorCode.BAD_MAC,
                    "request MAC does not verify: the session key differs from the daemon's, "
                    "or the request was captured from another connection",
                )
            verified = True
            if seq != self._next_seq:
                raise Refusal(
                    ErrorCode.REPLAY,
                    f"sequence number {seq} where {self._next_seq} was due: a replayed or "
                    "reordered request",
                )
            self._next_seq += 1
            phase = Phase.AUTHENTICATED if self.authenticated else Phase.GREETED
            self.authenticated = True
            operation = admit(op, phase, self._asked_once)
            if operation.times is Times.ONCE:
                self._asked_once.add(op)
            arguments = operation.arguments(_decode_args(envelope.args), self._limits)
            result, audit_fields = operation.handler(engine, arguments)
        except ProtocolViolation as violation:
            refusal = Refusal(violation.code, violation.message)
        except ArgumentError as exc:
            refusal = Refusal(ErrorCode.BAD_REQUEST, f"args.{exc}")
        except Refusal as caught:
            refusal = caught
        except Exception:  # noqa: BLE001 - a handler bug becomes an error reply, not a dead daemon
            _log.exception("internal error handling %s (audit id %d)", op, audit_id)
            refusal = Refusal(ErrorCode.INTERNAL, "internal daemon error; see its log")
        else:
            reply = encode_reply(
                self._key, self.nonce, seq, status=STATUS_OK, body=result, audit_id=audit_id
            )
            audit = self._audit(audit_id, seq, op, STATUS_OK, audit_fields)
            return Outcome(frame(reply), close=False, audit=audit)
        if not verified:
            return self._refuse_unauthenticated(audit_id, refusal.code)
        return self._refuse(audit_id, seq, op, refusal)

    def refuse_frame(self, violation: ProtocolViolation) -> Outcome:
        """Answer bytes that never formed a request (e.g. an oversized frame) and close."""
        self._engine.counters.requests += 1
        audit_id = self._engine.next_audit_id()
        return self._refuse_unauthenticated(audit_id, violation.code)

    def _refuse_unauthenticated(self, audit_id: int, code: ErrorCode) -> Outcome:
        """Refuse bytes whose MAC has not verified: a fixed message, seq 0, nothing echoed."""
        if code not in UNAUTHENTICATED_MESSAGES:
            code = ErrorCode.BAD_FRAME
        message = UNAUTHENTICATED_MESSAGES[code]
        self._engine.counters.refusals[code] += 1
        body = error_body(code, message)
        reply = encode_reply(
            self._key, self.nonce, 0, status=STATUS_ERROR, body=body, audit_id=audit_id
        )
        audit = self._audit(
            audit_id, 0, None, STATUS_ERROR, {"code": str(code), "message": message}
        )
        return Outcome(
            frame(reply),
            close=True,
            audit=audit,
            unauthenticated=True,
        )

    def _refuse(self, audit_id: int, seq: int, op: str | None, refusal: Refusal) -> Outcome:
        self._engine.counters.refusals[refusal.code] += 1
        body = error_body(refusal.code, refusal.message, **refusal.details)
        reply = encode_reply(
            self._key, self.nonce, seq, status=STATUS_ERROR, body=body, audit_id=audit_id
        )
        audit = self._audit(
            audit_id,
            seq,
            op,
            STATUS_ERROR,
            {"code": str(refusal.code), "message": refusal.message},
        )
        return Outcome(frame(reply), close=refusal.code in CONNECTION_FATAL_CODES, audit=audit)

    def _audit(
        self, audit_id: int, seq: int, op: str | None, status: str, fields: dict[str, Any]
    ) -> AuditRecord:
        return AuditRecord(
            ts=time.time(),
            audit_id=audit_id,
            connection=self._connection_json,
            op=op if op is None or op in OPERATIONS else "(unknown)",
            seq=seq,
            status=status,
            fields=fields,
        )


def _decode_args(encoded: bytes) -> dict[str, Any]:
    """Arguments of an authenticated request; undecodable ones refuse the request only."""
    try:
        return decode_map(encoded, "args")
    except ProtocolViolation as violation:
        raise Refusal(ErrorCode.BAD_REQUEST, f"args: {violation.message}") from None
