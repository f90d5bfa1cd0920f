"""The orchestrator's side of the sidecar protocol: a :class:`SealAuthority` over one socket.

One persistent connection behind a lock makes the client safe to share between threads. Nothing
is retried: a security operation that fails raises, and the run fails closed. The only thing done
without asking is reconnecting when the daemon closed an idle connection before a request was
sent; the new greeting must show the same boot id, or every seal is void and
:class:`DaemonRestartedError` is raised for good.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, TypeVar

from elspeth.security._authority import (
    DeriveRequest,
    FrameCertificate,
    OriginGrant,
    SealAuthority,
)
from elspeth.security._errors import LevelParseError, SecurityError
from elspeth.security._levels import SecurityLevel
from elspeth.sidecar._errors import (
    CheckpointMismatchError,
    DaemonProtocolError,
    DaemonRestartedError,
    DaemonUnavailableError,
    KeyFileError,
    RequestRefusedError,
    SealRejectedError,
)
from elspeth.sidecar._keys import SESSION_KEY_POLICY, read_key_file
from elspeth.sidecar._protocol import (
    LENGTH_PREFIX,
    MAC_SIZE,
    STATUS_OK,
    ErrorCode,
    Greeting,
    MacKey,
    ProtocolViolation,
    encode_request,
    frame,
    parse_greeting,
    parse_reply,
)
from elspeth.sidecar._schema import Limits
from elspeth.sidecar._schema import certificate as certificate_schema

DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_OP_TIMEOUT: Final = 30.0
_RECEIVE_CHUNK: Final = 65536
_IDLE_CHECK_AFTER: Final = 1.0
"""Seconds of silence after which the connection is checked for a daemon-side close first."""
_RETIRE_ON_CLOSE_TIMEOUT: Final = 2.0
"""Seconds a closing client waits for its frames to be retired; an exit is never held longer."""
_CERTIFICATE_LIMITS: Final = Limits(max_batch=0, max_record_bytes=0)
"""A certificate has no list or record field, so no configured limit applies to it."""
_FRAME_MARGIN: Final = 1024
"""Room left in a frame for the envelope around a batch's items."""

_ErrorFactory = Callable[[str, str, int], SecurityError]
_T = TypeVar("_T")


def _protocol_refusal(code: str, message: str, audit_id: int) -> SecurityError:
    return DaemonProtocolError(f"daemon refused the request at protocol level ({code}): {message}")


_ERRORS_BY_CODE: Final[Mapping[str, _ErrorFactory]] = MappingProxyType(
    {
        ErrorCode.SEAL_INVALID: SealRejectedError,
        ErrorCode.CHECKPOINT_INVALID: CheckpointMismatchError,
        ErrorCode.BAD_FRAME: _protocol_refusal,
        ErrorCode.BAD_MAC: _protocol_refusal,
        ErrorCode.REPLAY: _protocol_refusal,
    }
)
"""How an error reply becomes an exception; any other code is a :class:`RequestRefusedError`."""


class SidecarClient(SealAuthority):
    """Thread-safe client of the sidecar daemon, implementing the seal-authority interface."""

    def __init__(
        self,
        socket_path: str | Path,
        session_key_path: str | Path,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
    ) -> None:
        self._socket_path = str(socket_path)
        self._connect_timeout = timeout
        self._op_timeout = op_timeout
        key = read_key_file(Path(session_key_path), SESSION_KEY_POLICY)
        try:
            self._mac = MacKey(key)
        finally:
            # OpenSSL's HMAC context now holds the key; our copy is wiped at once.
            key[:] = bytes(len(key))
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._greeting: Greeting | None = None
        self._boot_id: bytes | None = None
        self._seq = 0
        self._last_used = 0.0
        self._fatal: SecurityError | None = None
        self._closed = False
        self._issued: set[str] = set()
        """Frames this client had registered and not yet retired: retired when it closes."""
        with self._lock:
            self._open_connection()

    @classmethod
    def connect(
        cls,
        socket_path: str | Path,
        session_key_path: str | Path,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
    ) -> SidecarClient:
        """Connect and authenticate the daemon's greeting; raises if either fails."""
        return cls(socket_path, session_key_path, timeout=timeout, op_timeout=op_timeout)

    @classmethod
    def wait_until_ready(
        cls,
        socket_path: str | Path,
        session_key_path: str | Path,
        timeout: float,
        *,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
        poll_interval: float = 0.05,
    ) -> SidecarClient:
        """Poll connect + ``health`` until the daemon answers or ``timeout`` passes.

        Only "not there yet" is waited out (no socket, connection refused, key file not yet
        written); a wrong key, bad key permissions or an impostor fail at once.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                client = cls(socket_path, session_key_path, timeout=timeout, op_timeout=op_timeout)
            except (DaemonUnavailableError, KeyFileError) as exc:
                if isinstance(exc, KeyFileError) and Path(session_key_path).exists():
                    raise
                if time.monotonic() >= deadline:
                    if isinstance(exc, KeyFileError) and Path(socket_path).exists():
                        # The daemon is there and the key never came: the path is wrong.
                        raise KeyFileError(
                            f"{exc} (the daemon's socket {socket_path} is there: is "
                            "session_key_path the daemon's session key?)"
                        ) from None
                    raise DaemonUnavailableError(
                        f"sidecar daemon at {socket_path} not ready within {timeout:g} s: {exc}"
                    ) from exc
                time.sleep(poll_interval)
                continue
            try:
                client.health()
            except BaseException:
                client.close()
                raise
            return client

    # --- properties ----------------------------------------------------------------------

    @property
    def boot_id(self) -> bytes:
        """The daemon's boot id as first seen; every later connection must show the same."""
        assert self._boot_id is not None
        return self._boot_id

    @property
    def mode(self) -> str:
        """``"sidecar"`` or ``"standalone"``, as the daemon's authenticated greeting says."""
        assert self._greeting is not None
        return self._greeting.mode

    @property
    def max_batch(self) -> int:
        assert self._greeting is not None
        return self._greeting.max_batch

    # --- SealAuthority -------------------------------------------------------------------

    def authorize_construct(self, level: SecurityLevel, digest: bytes) -> OriginGrant:
        level = SecurityLevel.parse(level)
        result, audit_id = self._call(
            "authorize_construct", {"level": level.rank, "digest": digest}
        )
        grant_id = _field(result, "grant_id", bytes)
        expires_at = _field(result, "expires_at", float)
        granted = _level(result)
        if granted != level or _field(result, "digest", bytes) != digest:
            raise DaemonProtocolError("daemon granted a different level or digest than asked")
        return OriginGrant(grant_id, granted, digest, expires_at, audit_id)

    def redeem_grant(self, grant: OriginGrant) -> FrameCertificate:
        result, audit_id = self._call("redeem_grant", {"grant_id": grant.grant_id})
        certificate = _certificate(result, audit_id)
        if certificate.level != grant.level or certificate.digest != grant.digest:
            raise DaemonProtocolError("daemon redeemed a grant for a different level or digest")
        self._issued.add(certificate.frame_id)
        return certificate

    def derive(
        self, parent_ids: Sequence[str], digest: bytes, floor: SecurityLevel | None = None
    ) -> FrameCertificate:
        request = DeriveRequest(tuple(parent_ids), digest, floor)
        result, audit_id = self._call("derive", _derive_args(request))
        certificate = _checked_derivation(_certificate(result, audit_id), request)
        self._issued.add(certificate.frame_id)
        return certificate

    def derive_batch(self, requests: Sequence[DeriveRequest]) -> list[FrameCertificate]:
        certificates: list[FrameCertificate] = []
        for chunk in self._chunks(requests, _derive_size):
            result, audit_id = self._call(
                "derive_batch", {"items": [_derive_args(r) for r in chunk]}
            )
            items = _field(result, "items", list)
            if len(items) != len(chunk):
                raise DaemonProtocolError("daemon answered a batch with the wrong item count")
            certificates.extend(
                _checked_derivation(certificate, request)
                for certificate, request in zip(_certificates(items, audit_id), chunk, strict=True)
            )
            self._issued.update(c.frame_id for c in certificates[-len(chunk) :])
        return certificates

    def verify_seal(self, certificate: FrameCertificate) -> int:
        _, audit_id = self._call("verify_seal", _certificate_args(certificate))
        return audit_id

    def verify_batch(self, certificates: Sequence[FrameCertificate]) -> list[int]:
        audit_ids: list[int] = []
        for chunk in self._chunks(certificates, _certificate_size):
            _, audit_id = self._call(
                "verify_batch", {"items": [_certificate_args(c) for c in chunk]}
            )
            audit_ids.extend([audit_id] * len(chunk))
        return audit_ids

    def retire(self, frame_ids: Sequence[str]) -> None:
        for chunk in self._chunks(list(frame_ids), lambda frame_id: len(frame_id) + 2):
            self._call("retire", {"frame_ids": list(chunk)})
            self._issued.difference_update(chunk)

    # --- beyond the interface ------------------------------------------------------------

    def checkpoint_mac(self, record: bytes) -> bytes:
        """MAC ``record`` under the daemon's persistent checkpoint key."""
        result, _ = self._call("checkpoint_mac", {"record": bytes(record)})
        mac = _field(result, "mac", bytes)
        if len(mac) != MAC_SIZE:
            raise DaemonProtocolError("daemon returned a checkpoint MAC of the wrong size")
        return mac

    def checkpoint_verify(self, record: bytes, mac: bytes) -> bool:
        """``True`` if ``mac`` verifies; raises :class:`CheckpointMismatchError` if not."""
        self._call("checkpoint_verify", {"record": bytes(record), "mac": bytes(mac)})
        return True

    def health(self) -> dict[str, Any]:
        """Status, mode, boot id, uptime, live frames, grants and counters."""
        result, _ = self._call("health", {})
        return result

    def close(self) -> None:
        """Retire the frames this client registered, then disconnect.

        A frame lives as long as the client that made it: a daemon serving many runs would
        otherwise fill its live-frame table, and refuse an origin frame at a lower level for
        content a finished run once held higher. Retiring is best effort; a daemon that cannot be
        reached loses its frames when it restarts anyway.
        """
        if self._issued and not self._closed and self._fatal is None:
            self._op_timeout = min(self._op_timeout, _RETIRE_ON_CLOSE_TIMEOUT)
            with contextlib.suppress(SecurityError):
                self.retire(sorted(self._issued))
        with self._lock:
            self._closed = True
            self._disconnect()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        boot = self._boot_id.hex() if self._boot_id else "?"
        return f"<SidecarClient {self._socket_path} boot={boot} {state}>"

    # --- transport -----------------------------------------------------------------------

    def _call(self, op: str, args: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        with self._lock:
            if self._fatal is not None:
                raise self._fatal
            if self._closed:
                raise DaemonUnavailableError("sidecar client is closed")
            if self._sock is None or time.monotonic() - self._last_used > _IDLE_CHECK_AFTER:
                self._reconnect_if_dropped()
            deadline = time.monotonic() + self._op_timeout
            try:
                try:
                    seq = self._send_request(op, args)
                except (BrokenPipeError, ConnectionResetError):
                    # The daemon had closed this connection (idle timeout, restart) before the
                    # request reached it, so nothing was processed: send it on a new connection,
                    # whose greeting must show the same boot id. This is not a retry.
                    self._disconnect()
                    self._open_connection()
                    seq = self._send_request(op, args)
                assert self._greeting is not None
                reply = parse_reply(self._mac, self._greeting.nonce, self._read_frame(deadline))
            except ProtocolViolation as violation:
                self._disconnect()
                raise DaemonProtocolError(
                    f"invalid reply to {op}: {violation.message}; the session key differs from "
                    "the daemon's or the socket is not the real daemon"
                ) from None
            except (TimeoutError, BlockingIOError):
                self._disconnect()
                raise DaemonUnavailableError(
                    f"sidecar daemon did not answer {op} within {self._op_timeout:g} s"
                ) from None
            except OSError as exc:
                self._disconnect()
                raise DaemonUnavailableError(
                    f"sidecar connection failed during {op}: {exc.strerror or exc}"
                ) from None
            self._last_used = time.monotonic()
            if reply.seq != seq:
                self._disconnect()
                raise DaemonProtocolError(f"reply to {op} carries seq {reply.seq}, not {seq}")
            if reply.status == STATUS_OK:
                return reply.body, reply.audit_id
            code = str(reply.body.get("code"))
            if code in (ErrorCode.BAD_FRAME, ErrorCode.BAD_MAC, ErrorCode.REPLAY):
                self._disconnect()
        factory = _ERRORS_BY_CODE.get(code, RequestRefusedError)
        raise factory(code, str(reply.body.get("message")), reply.audit_id)

    def _send_request(self, op: str, args: Mapping[str, Any]) -> int:
        assert self._sock is not None
        assert self._greeting is not None
        seq = self._seq + 1
        body = encode_request(self._mac, self._greeting.nonce, seq, op, args)
        if len(body) > self._greeting.max_frame_bytes:
            raise RequestRefusedError(
                ErrorCode.LIMIT,
                f"{op} request of {len(body)} bytes exceeds the daemon's max_frame_bytes "
                f"({self._greeting.max_frame_bytes})",
                0,
            )
        self._seq = seq
        self._sock.sendall(frame(body))
        return seq

    def _open_connection(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(self._connect_timeout)
            sock.connect(self._socket_path)
            self._sock = sock
            self._buffer.clear()
            deadline = time.monotonic() + self._connect_timeout
            greeting_body = self._read_frame(deadline)
            greeting = parse_greeting(self._mac, greeting_body)
        except ProtocolViolation as violation:
            self._disconnect()
            raise DaemonProtocolError(
                f"the daemon's greeting on {self._socket_path} does not authenticate "
                f"({violation.message}): the session key differs from the daemon's, or this "
                "socket is not the real daemon"
            ) from None
        except (TimeoutError, BlockingIOError):
            self._disconnect()
            sock.close()
            raise DaemonUnavailableError(
                f"no greeting from the sidecar daemon at {self._socket_path} within "
                f"{self._connect_timeout:g} s"
            ) from None
        except OSError as exc:
            self._disconnect()
            sock.close()
            raise DaemonUnavailableError(
                f"cannot connect to the sidecar daemon at {self._socket_path}: "
                f"{exc.strerror or exc}"
            ) from None
        if self._boot_id is not None and greeting.boot_id != self._boot_id:
            self._disconnect()
            self._fatal = DaemonRestartedError(
                f"sidecar daemon restarted (boot id {self._boot_id.hex()} is now "
                f"{greeting.boot_id.hex()}): every seal it issued is void; the run must stop"
            )
            raise self._fatal
        self._boot_id = greeting.boot_id
        self._greeting = greeting
        self._seq = 0
        # Blocking socket with a kernel receive timeout: one recv per reply, no poll() first.
        sock.settimeout(None)
        timeval = struct.pack("ll", int(self._op_timeout), int(self._op_timeout % 1 * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def _reconnect_if_dropped(self) -> None:
        """Reconnect if the daemon closed the connection (idle timeout) before we send."""
        sock = self._sock
        if sock is not None:
            try:
                peeked = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                peeked = b""
            if peeked:
                self._disconnect()
                raise DaemonProtocolError("daemon sent data nobody asked for; connection dropped")
            self._disconnect()
        self._open_connection()

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()

    def _read_frame(self, deadline: float) -> bytes:
        assert self._sock is not None
        buffer = self._buffer
        if not buffer:
            # The usual case: one recv brings exactly one whole reply, used without copying.
            chunk = self._sock.recv(_RECEIVE_CHUNK)
            if not chunk:
                raise ConnectionResetError(0, "the daemon closed the connection")
            if len(chunk) >= LENGTH_PREFIX.size:
                (length,) = LENGTH_PREFIX.unpack_from(chunk)
                if len(chunk) == LENGTH_PREFIX.size + length:
                    return chunk[LENGTH_PREFIX.size :]
            buffer += chunk
        needed = LENGTH_PREFIX.size
        while True:
            if len(buffer) >= LENGTH_PREFIX.size:
                (length,) = LENGTH_PREFIX.unpack_from(buffer)
                needed = LENGTH_PREFIX.size + length
                if len(buffer) >= needed:
                    body = bytes(buffer[LENGTH_PREFIX.size : needed])
                    del buffer[:needed]
                    return body
            if time.monotonic() > deadline:
                raise TimeoutError
            chunk = self._sock.recv(max(_RECEIVE_CHUNK, needed - len(buffer)))
            if not chunk:
                raise ConnectionResetError(0, "the daemon closed the connection")
            buffer += chunk

    def _chunks(self, items: Sequence[_T], size_of: Callable[[_T], int]) -> Iterator[list[_T]]:
        assert self._greeting is not None
        budget = self._greeting.max_frame_bytes - _FRAME_MARGIN
        chunk: list[_T] = []
        used = 0
        for item in items:
            size = size_of(item)
            if chunk and (len(chunk) >= self._greeting.max_batch or used + size > budget):
                yield chunk
                chunk, used = [], 0
            chunk.append(item)
            used += size
        if chunk:
            yield chunk


# --- reply checking --------------------------------------------------------------------------


def _field(result: Mapping[str, Any], name: str, kind: type[_T]) -> _T:
    value = result.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise DaemonProtocolError(
            f"daemon reply field {name!r} is missing or not a {kind.__name__}"
        )
    return value


def _level(result: Mapping[str, Any]) -> SecurityLevel:
    rank = result.get("level")
    try:
        return SecurityLevel.from_rank(rank)
    except LevelParseError:
        raise DaemonProtocolError(f"daemon reply has an invalid level rank {rank!r}") from None


def _certificate(result: object, audit_id: int) -> FrameCertificate:
    if not isinstance(result, dict):
        raise DaemonProtocolError("daemon reply item is not a map")
    seal = _field(result, "seal", bytes)
    if len(seal) != MAC_SIZE:
        raise DaemonProtocolError("daemon returned a seal of the wrong size")
    return FrameCertificate(
        frame_id=_field(result, "frame_id", str),
        level=_level(result),
        digest=_field(result, "digest", bytes),
        seal=seal,
        audit_id=audit_id,
    )


def _certificates(items: list[Any], audit_id: int) -> list[FrameCertificate]:
    """The certificates in a batch reply, checked as :func:`_certificate` checks each one.

    A batch whose every item has the exact wire shape (the daemon's own certificate schema,
    checked column by column) is converted directly; any other goes item by item, so a bad
    item raises the same error either way.
    """
    if not certificate_schema.accepts_all(items, _CERTIFICATE_LIMITS):
        return [_certificate(item, audit_id) for item in items]
    from_rank = SecurityLevel.from_rank
    return [
        FrameCertificate(
            frame_id=item["frame_id"],
            level=from_rank(item["level"]),
            digest=item["digest"],
            seal=item["seal"],
            audit_id=audit_id,
        )
        for item in items
    ]


def _checked_derivation(certificate: FrameCertificate, request: DeriveRequest) -> FrameCertificate:
    if certificate.digest != request.digest:
        raise DaemonProtocolError("daemon registered a different digest than requested")
    if request.floor is not None and certificate.level < request.floor:
        raise DaemonProtocolError(
            f"daemon derived level {certificate.level} below the floor {request.floor}"
        )
    return certificate


def _derive_args(request: DeriveRequest) -> dict[str, Any]:
    floor = None if request.floor is None else SecurityLevel.parse(request.floor).rank
    return {"parent_ids": list(request.parent_ids), "digest": request.digest, "floor": floor}


def _derive_size(request: DeriveRequest) -> int:
    return 64 + sum(len(parent) + 2 for parent in request.parent_ids)


def _certificate_args(certificate: FrameCertificate) -> dict[str, Any]:
    return {
        "frame_id": certificate.frame_id,
        "level": certificate.level.rank,
        "digest": certificate.digest,
        "seal": certificate.seal,
    }


def _certificate_size(certificate: FrameCertificate) -> int:
    return 120 + len(certificate.frame_id)
