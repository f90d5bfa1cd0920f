"""The daemon's event loop: socket, peer credentials, fair request processing, timeouts.

One asyncio loop in one thread. Handlers are synchronous and in-memory, so a request is answered
within one callback; fairness between clients comes from processing at most
``max_inflight_per_connection`` requests per connection per loop turn, and from pausing a
connection's reads while its client is not reading its replies.

Against connection exhaustion: a new connection must complete an authenticated request within
``first_request_timeout_seconds``; one peer process holds at most ``max_connections_per_peer``
connections; at ``max_connections`` the oldest connection that has not authenticated is shed to
admit a new one. Refusals of unauthenticated requests are audited in full only up to a small
burst per peer and code and interval, then summarised; every one is still counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from elspeth.sidecar._daemon._audit import AuditLog
from elspeth.sidecar._daemon._config import SidecarConfig
from elspeth.sidecar._daemon._engine import SealEngine
from elspeth.sidecar._daemon._session import Outcome, Peer, Session
from elspeth.sidecar._errors import SidecarConfigError
from elspeth.sidecar._keys import group_id
from elspeth.sidecar._protocol import FrameReader, MacKey, ProtocolViolation
from elspeth.sidecar._schema import Limits

_log = logging.getLogger("elspeth.sidecar")

_PEERCRED: Final = struct.Struct("3i")
_SHUTDOWN_GRACE_SECONDS: Final = 5.0
REFUSAL_BURST: Final = 3
"""Refusals per (code, pid, uid) and interval logged and audited one by one; the rest are
summarised at the end of the interval (and always counted)."""


class _RefusalTally:
    """Per-interval counts of refusals by (code, pid, uid), for rate-limited logging."""

    __slots__ = ("_interval", "_seen", "_start", "_suppressed")

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._start = time.monotonic()
        self._seen: Counter[tuple[str, int, int]] = Counter()
        self._suppressed: dict[tuple[str, int, int], list[int]] = {}

    def note(self, code: str, peer: Peer) -> bool:
        """Count one refusal; True if it is to be logged (or audited) individually."""
        key = (code, peer.pid, peer.uid)
        self._seen[key] += 1
        return self._seen[key] <= REFUSAL_BURST

    def suppressed(self, code: str, peer: Peer, audit_id: int | None) -> None:
        entry = self._suppressed.setdefault((code, peer.pid, peer.uid), [0, 0, 0])
        entry[0] += 1
        if audit_id is not None:
            entry[1] = entry[1] or audit_id
            entry[2] = audit_id

    def due(self, now: float) -> bool:
        return now - self._start >= self._interval

    def take(self, now: float) -> tuple[float, list[tuple[tuple[str, int, int], int, list[int]]]]:
        """Summaries of the interval that ends now: (key, refusals, [not individually, first
        and last audit id not written]) for each key that went over the burst; then reset."""
        elapsed = now - self._start
        summaries = [
            (key, self._seen[key], entry) for key, entry in sorted(self._suppressed.items())
        ]
        self._start = now
        self._seen.clear()
        self._suppressed.clear()
        return elapsed, summaries


class SocketInUseError(Exception):
    """Another process is listening on the configured socket path."""


@dataclass(frozen=True, slots=True)
class ListeningSocket:
    sock: socket.socket
    path: Path
    identity: tuple[int, int]

    def remove(self) -> None:
        """Unlink the socket path if it is still ours (another daemon may have replaced it)."""
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self.identity:
                os.unlink(self.path)


def prepare_socket_directory(path: Path, group: str) -> None:
    """Create the socket's directory (0750, the socket group) if absent; warn if it is loose."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o750, parents=True)
        gid = group_id(group)
        if gid is not None:
            with contextlib.suppress(PermissionError):
                os.chown(directory, -1, gid)
        return
    mode = directory.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        _log.warning(
            "socket directory %s is writable by group or others (mode %04o): another user "
            "could replace the socket; fix with: chmod 0750 %s",
            directory,
            stat.S_IMODE(mode),
            directory,
        )


def create_listening_socket(path: Path, group: str) -> ListeningSocket:
    """Bind the Unix socket with mode 0660 (never world-accessible) and the configured group."""
    if os.path.lexists(path):
        _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    # The umask closes the window between bind() and chmod() in which the socket would
    # otherwise exist with the process's default permissions.
    previous = os.umask(0o117)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(previous)
    os.chmod(path, 0o660)
    gid = group_id(group)
    if gid is not None:
        try:
            os.chown(path, -1, gid)
        except PermissionError:
            _log.warning("cannot give socket %s to group %s: not a member", path, group)
    elif group:
        _log.info("group %r does not exist; socket %s keeps the daemon's group", group, path)
    sock.listen(128)
    sock.setblocking(False)
    info = os.lstat(path)
    return ListeningSocket(sock, path, (info.st_dev, info.st_ino))


def _remove_stale_socket(path: Path) -> None:
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise SocketInUseError(
            f"{path} exists and is not a socket; remove it or change socket_path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise SocketInUseError(f"cannot probe existing socket {path}: {exc.strerror}") from None
        _log.info("removing stale socket %s (nothing listens on it)", path)
        os.unlink(path)
    else:
        raise SocketInUseError(f"another process is already listening on {path}")
    finally:
        probe.close()


def peer_credentials(sock: socket.socket) -> Peer:
    pid, uid, gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return Peer(pid=pid, uid=uid, gid=gid)


def _command_of(pid: int) -> str:
    """Best effort: another user's /proc entry may be hidden (hidepid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read(512)
    except OSError:
        return "(unavailable)"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200] or "(empty)"


class SidecarServer:
    """Accepts connections, admits allowed peers and runs their sessions."""

    def __init__(
        self,
        *,
        config: SidecarConfig,
        engine: SealEngine,
        session_key: MacKey,
        audit: AuditLog,
        listening: ListeningSocket,
        allowed_uids: frozenset[int],
    ) -> None:
        self._config = config
        self._engine = engine
        self._session_key = session_key
        self._audit = audit
        self._listening = listening
        self._allowed_uids = allowed_uids
        self._limits = Limits(max_batch=config.max_batch, max_record_bytes=config.max_record_bytes)
        self._connections: set[_Connection] = set()
        self._per_pid: Counter[int] = Counter()
        self._tally = _RefusalTally(config.refusal_log_interval_seconds)
        self._next_connection_id = 0
        self._stop: asyncio.Event | None = None
        self.failure: str | None = None

    # --- admission -----------------------------------------------------------------------

    def _refuse_at_limit(self, limit: str, peer: Peer, state: str) -> None:
        """Count a connection refused by ``limit``; log it unless the peer is over its burst."""
        self._engine.counters.dropped_connections[limit] += 1
        if self._tally.note(limit, peer):
            _log.warning("refused peer uid=%d pid=%d: %s (%s)", peer.uid, peer.pid, state, limit)
        else:
            self._tally.suppressed(limit, peer, None)

    def admit(self, connection: _Connection, peer: Peer) -> Session | None:
        counters = self._engine.counters
        if peer.uid not in self._allowed_uids:
            counters.refused_peers += 1
            _log.warning(
                "refused peer uid=%d pid=%d command=%s: uid not in the allow-list",
                peer.uid,
                peer.pid,
                _command_of(peer.pid),
            )
            return None
        if self._per_pid[peer.pid] >= self._config.max_connections_per_peer:
            self._refuse_at_limit(
                "max_connections_per_peer", peer, f"it holds {self._per_pid[peer.pid]} connections"
            )
            return None
        if len(self._connections) >= self._config.max_connections and not self._shed_for(peer):
            self._refuse_at_limit(
                "max_connections",
                peer,
                f"{len(self._connections)} connections open, all authenticated",
            )
            return None
        self._next_connection_id += 1
        self._connections.add(connection)
        self._per_pid[peer.pid] += 1
        counters.connections_total += 1
        counters.connections_open = len(self._connections)
        _log.debug("connection %d from uid=%d pid=%d", self._next_connection_id, peer.uid, peer.pid)
        return Session(
            self._engine,
            self._session_key,
            self._limits,
            max_frame_bytes=self._config.max_frame_bytes,
            connection_id=self._next_connection_id,
            peer=peer,
        )

    def _shed_for(self, newcomer: Peer) -> bool:
        """At the global limit: close the oldest connection not yet authenticated, if any."""
        candidates = [c for c in self._connections if not c.authenticated]
        if not candidates:
            return False
        oldest = min(candidates, key=lambda c: c.opened)
        victim = oldest.peer
        assert victim is not None  # only admitted connections, whose peer is known, are here
        age = time.monotonic() - oldest.opened
        _log.warning(
            "shed connection %d of uid=%d pid=%d (open %.1f s, not authenticated) to admit "
            "uid=%d pid=%d: %d connections open (max_connections)",
            oldest.connection_id,
            victim.uid,
            victim.pid,
            age,
            newcomer.uid,
            newcomer.pid,
            len(self._connections),
        )
        self.audit_event(
            "shed",
            {
                "conn": oldest.connection_id,
                "uid": victim.uid,
                "pid": victim.pid,
                "age_seconds": round(age, 3),
                "for_uid": newcomer.uid,
                "for_pid": newcomer.pid,
            },
        )
        oldest.drop("shed")
        return True

    def dropped(self, connection: _Connection, reason: str) -> None:
        self._engine.counters.dropped_connections[reason] += 1
        peer = connection.peer
        _log.info(
            "dropping connection %d of uid=%d pid=%d: %s",
            connection.connection_id,
            peer.uid if peer else -1,
            peer.pid if peer else -1,
            reason,
        )
        self.forget(connection)

    def forget(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            if connection.peer is not None:
                pid = connection.peer.pid
                self._per_pid[pid] -= 1
                if self._per_pid[pid] <= 0:
                    del self._per_pid[pid]
        self._engine.counters.connections_open = len(self._connections)

    def record(self, outcomes: list[Outcome], peer: Peer) -> bool:
        """Audit before replying; if the audit log fails the daemon stops answering at all.

        Unauthenticated refusals beyond the burst are left to the interval's summary line.
        """
        records = []
        for outcome in outcomes:
            if outcome.unauthenticated:
                code = str(outcome.audit.fields.get("code"))
                if not self._tally.note(code, peer):
                    self._tally.suppressed(code, peer, outcome.audit.audit_id)
                    continue
                _log.info(
                    "refused unauthenticated request from uid=%d pid=%d: %s (audit id %d)",
                    peer.uid,
                    peer.pid,
                    code,
                    outcome.audit.audit_id,
                )
            records.append(outcome.audit)
        if not records:
            return True
        try:
            self._audit.write(records)
        except OSError as exc:
            self.fail(f"audit log {self._audit.path} cannot be written: {exc.strerror}")
            return False
        return True

    def audit_event(self, event: str, fields: dict[str, object]) -> None:
        try:
            self._audit.write_event(event, dict(fields))
        except OSError as exc:
            self.fail(f"audit log {self._audit.path} cannot be written: {exc.strerror}")

    def summarise_refusals(self, now: float) -> None:
        elapsed, summaries = self._tally.take(now)
        for (code, pid, uid), total, (not_logged, first_id, last_id) in summaries:
            _log.warning(
                "%d refusals of code %s from pid %d (uid %d) in the last %.0f s; %d of them "
                "not logged individually",
                total,
                code,
                pid,
                uid,
                elapsed,
                not_logged,
            )
            fields: dict[str, object] = {
                "code": code,
                "pid": pid,
                "uid": uid,
                "count": total,
                "not_logged": not_logged,
                "interval_seconds": round(elapsed, 3),
            }
            if first_id:
                fields["first_audit_id"] = first_id
                fields["last_audit_id"] = last_id
            self.audit_event("refusals", fields)

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            _log.critical("stopping: %s", reason)
        if self._stop is not None:
            self._stop.set()

    # --- running -------------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        server = await loop.create_unix_server(
            lambda: _Connection(self, self._config), sock=self._listening.sock
        )
        housekeeping = asyncio.create_task(self._housekeeping())
        _log.info(
            "listening on %s (mode %s, boot id %s, protocol 1)",
            self._listening.path,
            self._engine.mode,
            self._engine.boot_id.hex(),
        )
        try:
            await self._stop.wait()
        finally:
            _log.info("stopping: no new connections; finishing in-flight requests")
            server.close()
            self._listening.remove()
            for connection in list(self._connections):
                connection.finish()
            deadline = time.monotonic() + _SHUTDOWN_GRACE_SECONDS
            while self._connections and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            for connection in list(self._connections):
                connection.drop("shutdown")
            self.summarise_refusals(time.monotonic())
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping

    async def _housekeeping(self) -> None:
        """Expire grants, drop stalled and idle connections, fsync the audit log."""
        config = self._config
        period = max(
            0.02,
            min(
                1.0,
                config.read_timeout_seconds / 4,
                config.grant_ttl_seconds / 2,
                config.first_request_timeout_seconds / 4,
                config.refusal_log_interval_seconds,
            ),
        )
        while True:
            await asyncio.sleep(period)
            if config.parent_pid and os.getppid() != config.parent_pid:
                _log.warning("parent process %d is gone; stopping", config.parent_pid)
                self._stop.set() if self._stop is not None else None
                return
            now = time.monotonic()
            self._engine.expire_grants()
            for connection in list(self._connections):
                connection.check_timeouts(now)
            if self._tally.due(now):
                self.summarise_refusals(now)
            try:
                self._audit.sync()
            except OSError as exc:
                self.fail(f"audit log {self._audit.path} cannot be synced: {exc.strerror}")


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_closing",
        "_config",
        "_last_activity",
        "_partial_since",
        "_paused",
        "_reader",
        "_server",
        "_session",
        "_transport",
        "_write_paused",
        "opened",
        "peer",
    )

    def __init__(self, server: SidecarServer, config: SidecarConfig) -> None:
        self._server = server
        self._config = config
        self._reader = FrameReader(config.max_frame_bytes)
        self._session: Session | None = None
        self._transport: asyncio.Transport | None = None
        self._last_activity = time.monotonic()
        self._partial_since: float | None = None
        self._paused = False
        self._write_paused = False
        self._closing = False
        self.opened = self._last_activity
        self.peer: Peer | None = None

    @property
    def authenticated(self) -> bool:
        """Whether a request on this connection has passed the MAC and sequence checks."""
        return self._session is not None and self._session.authenticated

    @property
    def connection_id(self) -> int:
        return self._session.connection_id if self._session is not None else 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        try:
            peer = peer_credentials(transport.get_extra_info("socket"))
        except OSError as exc:
            _log.warning("cannot read peer credentials: %s", exc.strerror)
            transport.abort()
            return
        self.peer = peer
        self._session = self._server.admit(self, peer)
        if self._session is None:
            transport.abort()
            return
        transport.set_write_buffer_limits(high=2 * self._config.max_frame_bytes)
        transport.write(self._session.greeting())

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._server.forget(self)

    def data_received(self, data: bytes) -> None:
        if self._closing or self._session is None:
            return
        self._last_activity = time.monotonic()
        self._reader.feed(data)
        self._process()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._set_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._set_reading()
        self._process()

    def _set_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        should_pause = self._write_paused or self._paused
        if should_pause and transport.is_reading():
            transport.pause_reading()
        elif not should_pause and not transport.is_reading():
            transport.resume_reading()

    def _process(self) -> None:
        session, transport = self._session, self._transport
        if session is None or transport is None or self._closing or self._write_paused:
            return
        outcomes: list[Outcome] = []
        close = False
        more = False
        for _ in range(self._config.max_inflight_per_connection):
            try:
                body = self._reader.next_body()
            except ProtocolViolation as violation:
                outcomes.append(session.refuse_frame(violation))
                close = True
                break
            if body is None:
                break
            outcome = session.handle(body)
            outcomes.append(outcome)
            if outcome.close:
                close = True
                break
        else:
            more = True
        if outcomes:
            if not self._server.record(outcomes, session.peer):
                self.drop("audit_failure")
                return
            transport.write(b"".join(outcome.reply for outcome in outcomes))
        if close:
            self._closing = True
            transport.close()
            return
        self._partial_since = (
            None if not self._reader.buffered else (self._partial_since or time.monotonic())
        )
        # Yield to other connections before working through more of this one's backlog.
        self._paused = more
        self._set_reading()
        if more:
            asyncio.get_running_loop().call_soon(self._continue)

    def _continue(self) -> None:
        self._paused = False
        self._set_reading()
        self._process()

    def finish(self) -> None:
        """Shutdown: answer what has fully arrived, then close after the replies are sent."""
        while not self._closing and self._transport is not None and not self._write_paused:
            self._process()
            if not self._paused:
                break
        if self._transport is not None and not self._closing:
            self._closing = True
            self._transport.close()

    def drop(self, reason: str) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()
        self._server.dropped(self, reason)

    def check_timeouts(self, now: float) -> None:
        if (
            self._partial_since is not None
            and now - self._partial_since > self._config.read_timeout_seconds
        ):
            self.drop("read_timeout")
        elif (
            not self.authenticated
            and now - self.opened > self._config.first_request_timeout_seconds
        ):
            self.drop("first_request_timeout")
        elif now - self._last_activity > self._config.idle_timeout_seconds:
            self.drop("idle_timeout")


def resolve_allowed_uids(config: SidecarConfig, lookup: Callable[[str], int]) -> frozenset[int]:
    """The allow-list as uids; a user name this host does not know is a configuration error."""
    uids = set(config.allowed_uids)
    for name in config.allowed_users:
        try:
            uids.add(lookup(name))
        except KeyError:
            raise SidecarConfigError(
                f"{config.source}: key 'allowed_users': no such user {name!r} on this host"
            ) from None
    return frozenset(uids)
