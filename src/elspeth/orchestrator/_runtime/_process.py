"""One worker process as the orchestrator sees it: spawn, framed I/O with deadlines, kill.

The channel is one end of a Unix socket pair, passed as the worker's stdin and stdout: the
worker then has exactly descriptors 0, 1 and 2, and points 1 at stderr. Once the worker is ready,
a scratch watcher (:mod:`elspeth.orchestrator.reaper._scratch_watch`) watches its scratch
directory; every wait for the worker's next bytes is also a wait for the watcher to end. The
worker runs in a new session (its group id is the pid of the process we started: sudo, or the
worker itself in standalone mode). Killing goes through the reaper in sudo mode and straight to
the group in standalone mode; either way the child is reaped only afterwards, so its pid (the
group id) is not reused while the group is being killed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import select
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from elspeth.orchestrator import _wire
from elspeth.orchestrator._arrow import allocate
from elspeth.orchestrator._errors import WorkerStartError
from elspeth.orchestrator._groups import GroupKillError, remove_scratch_dir, terminate_group
from elspeth.orchestrator._runtime._config import RuntimeConfig, SpawnMode, WorkerLimits
from elspeth.orchestrator._runtime._ipc_stream import CheckedStream, StreamExpectation, read_stream
from elspeth.orchestrator._runtime._stderr import StderrCapture, private_directory
from elspeth.orchestrator.reaper._scratch_watch import ScratchWatcher
from elspeth.orchestrator.worker_process import _sandbox
from elspeth.security import SecurityLevel
from elspeth.sidecar._client._standalone import interrupts_deferred, write_owner_marker

_SOCKET_BUFFER_BYTES: Final = 4 * 1024 * 1024
_TERM_GRACE_SECONDS: Final = 0.5
_numbers = itertools.count(1)
log = logging.getLogger("elspeth.orchestrator")


class WorkerProcess:
    """A running worker at one pool level; not thread-safe (one call at a time, pool-managed)."""

    def __init__(
        self, config: RuntimeConfig, level: SecurityLevel, limits: WorkerLimits | None = None
    ) -> None:
        self.config = config
        self.level = level
        self.limits = limits if limits is not None else config.default_limits
        self.taint: SecurityLevel | None = None
        self.worker_id = secrets.token_urlsafe(16)
        self.number = next(_numbers)
        self.scratch_dir = str(config.scratch_root / f"worker-{secrets.token_hex(12)}")
        self.sandbox_report: dict[str, Any] = {}
        self.returncode: int | None = None
        self.bytes_received = 0
        """Every byte read from the worker's channel (what the tests of early refusals count)."""
        self.scratch_watcher: ScratchWatcher | None = None
        self.conversation = _wire.Conversation.orchestrator_side()
        self.warmed = False
        self._stopped = False
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for end in (self._sock, child):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER_BYTES)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER_BYTES)
        self._readable = select.poll()
        self._readable.register(self._sock, select.POLLIN)
        log_dir = private_directory(config.log_dir)
        try:
            # No interrupt between making the scratch directory or the process and recording it.
            with interrupts_deferred():
                self._spawn(child, log_dir)
            self._handshake()
            self._watch_scratch()
        except BaseException:
            if getattr(self, "_popen", None) is not None:
                self.stop(polite=False)
            raise

    def _spawn(self, child: socket.socket, log_dir: Path) -> None:
        """Start the worker process. In standalone mode its scratch directory is made here first,
        holding an owner marker (this process), so a later run can remove it if this one is
        killed outright; in sudo mode the worker makes it (the scratch root is its user's)."""
        config = self.config
        try:
            if config.mode is SpawnMode.STANDALONE:
                config.scratch_root.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.mkdir(self.scratch_dir, 0o700)
                write_owner_marker(Path(self.scratch_dir))
            self._popen = subprocess.Popen(
                config.worker_command(),
                stdin=child.fileno(),
                stdout=child.fileno(),
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
                env=_sandbox.worker_environment(self.scratch_dir, path=config.worker_path),
                cwd=config.worker_cwd,
            )
        except BaseException as error:
            self._sock.close()
            if config.mode is SpawnMode.STANDALONE:
                with contextlib.suppress(GroupKillError, OSError):
                    remove_scratch_dir(self.scratch_dir, owner=os.getuid())
            if isinstance(error, OSError):
                raise WorkerStartError(
                    f"cannot start a worker ({config.mode.value} mode): {error}"
                ) from None
            raise
        finally:
            child.close()
        self.pgid = self._popen.pid
        assert self._popen.stderr is not None
        self.stderr = StderrCapture(
            self._popen.stderr,
            log_dir / f"worker-{self.number}-{self.pgid}-{self.level.name}.stderr.log",
            self.level,
            config.stderr_cap_bytes,
        )

    def _handshake(self) -> None:
        config = self.config
        deadline = time.monotonic() + config.startup_timeout
        sandbox = {
            "scratch_dir": self.scratch_dir,
            "require_full": self.level > SecurityLevel.OFFICIAL_SENSITIVE
            and not config.allow_partial_sandbox,
            "limits": {
                "nproc": config.nproc_limit,
                "address_space_bytes": self.limits.memory_limit_bytes,
                "cpu_seconds": self.limits.cpu_limit_seconds,
                "open_files": config.open_files_limit,
                "file_size_bytes": self.limits.fsize_rlimit,
            },
            "plugin_dirs": [str(d) for d in config.plugin_dirs],
        }
        try:
            self.send(
                deadline,
                "hello",
                protocol=_wire.PROTOCOL_VERSION,
                max_message=config.max_message_bytes,
                sandbox=sandbox,
            )
            ready = self.receive(deadline)
        except (_wire.ProtocolError, TimeoutError, OSError) as error:
            raise WorkerStartError(
                f"worker did not start ({type(error).__name__}); its stderr is in "
                f"{self.stderr.path}"
            ) from None
        if ready.op != "ready" or ready["protocol"] != _wire.PROTOCOL_VERSION:
            raise WorkerStartError(f"worker answered {ready.op!r} to hello")
        self.sandbox_report = dict(ready["sandbox"])
        landlock = self.sandbox_report.get("landlock") or {}
        seccomp = self.sandbox_report.get("seccomp") or {}
        log.info(
            "worker %d at %s (group %d, worker pid %s) sandboxed: full=%s landlock=%s (abi %s) "
            "seccomp=%s",
            self.number,
            self.level.name,
            self.pgid,
            ready["pid"],
            bool(self.sandbox_report.get("full")),
            bool(landlock.get("applied")),
            landlock.get("abi"),
            bool(seccomp.get("applied")),
        )
        if config.allow_partial_sandbox and not self.sandbox_report.get("full"):
            log.warning(
                "AUDITED OVERRIDE: worker %d at %s runs without the full sandbox",
                self.number,
                self.level.name,
            )

    def _watch_scratch(self) -> None:
        """Start the watcher once the scratch directory exists (in sudo mode the worker makes it
        while starting) and before any plugin code is imported."""
        command = self.config.scratch_watch_command(
            self.pgid, self.scratch_dir, self.limits.scratch_bytes
        )
        try:
            self.scratch_watcher = ScratchWatcher(command)
        except OSError as error:
            raise WorkerStartError(f"cannot start a scratch watcher: {error}") from None
        self._readable.register(self.scratch_watcher.fd, select.POLLIN)

    def warm(self) -> None:
        """Have the worker make the imports every call needs (start-up work, so under the
        start-up timeout): a call's own deadline then times only the plugin."""
        deadline = time.monotonic() + self.config.startup_timeout
        try:
            self.send(deadline, "warm")
            answer = self.receive(deadline)
        except (_wire.ProtocolError, TimeoutError, OSError) as error:
            raise WorkerStartError(
                f"worker did not warm up ({type(error).__name__}); its stderr is in "
                f"{self.stderr.path}"
            ) from None
        if answer.op != "warmed":
            raise WorkerStartError(f"worker answered {answer.op!r} to warm")
        self.warmed = True

    def call_deadline(self, call_timeout: float) -> float:
        """When a request sent now must be answered. A worker not yet warmed makes its first
        imports inside its first request, so that one request also gets the start-up timeout."""
        allowance = 0.0 if self.warmed else self.config.startup_timeout
        return time.monotonic() + call_timeout + allowance

    # --- framed I/O with deadlines -------------------------------------------------------

    def send(self, deadline: float, op: str, **fields: Any) -> None:
        self.conversation.sending(op)
        self._send_all((_wire.encode(op, **fields),), deadline)

    def send_with_payload(
        self, deadline: float, op: str, payload: _wire.Buffer, **fields: Any
    ) -> None:
        self.conversation.sending(op)
        self._send_all(_wire.frames_with_payload(op, payload, **fields), deadline)

    def receive(self, deadline: float) -> _wire.Message:
        """The worker's next message. A payload it announces (its size within the payload cap)
        is left on the channel: read it with :meth:`receive_stream`, or stop the worker."""
        return _wire.read_control(
            lambda view: self._read_into(view, deadline),
            _wire.ORCHESTRATOR_BOUND,
            max_message=self.config.max_message_bytes,
            max_payload=self.config.max_payload_bytes,
            conversation=self.conversation,
        )

    def receive_stream(
        self, deadline: float, size: int, expectation: StreamExpectation
    ) -> CheckedStream:
        """The ``size``-byte payload announced by the message just received, read message by
        message; :class:`~._ipc_stream.StreamRefusedError` leaves the rest on the channel."""
        return read_stream(
            lambda view: self._read_into(view, deadline), allocate(size), expectation
        )

    def _send_all(self, frames: Iterable[_wire.Buffer], deadline: float) -> None:
        for frame in frames:
            self._sock.settimeout(_remaining(deadline))
            self._sock.sendall(frame)

    def _read_into(self, view: memoryview, deadline: float) -> None:
        filled, size = 0, view.nbytes
        while filled < size:
            self._wait_readable(deadline)
            self._sock.settimeout(_remaining(deadline))
            count = self._sock.recv_into(view[filled:])
            if count == 0:
                raise _wire.ChannelClosedError("the worker closed its channel")
            filled += count
            self.bytes_received += count

    def _wait_readable(self, deadline: float) -> None:
        events = self._readable.poll(_remaining(deadline) * 1000)
        if not events:
            raise TimeoutError("deadline passed")
        watcher = self.scratch_watcher
        if watcher is not None and any(fd == watcher.fd for fd, _ in events):
            raise _wire.ChannelClosedError("the worker's scratch watcher ended")

    # --- ending ----------------------------------------------------------------------------

    def stop(self, *, polite: bool) -> None:
        """End the worker: ask it to exit (if ``polite``), then kill its whole group and reap.

        Idempotent. Raises nothing: a failure to empty the group is logged loudly.
        """
        if self._stopped:
            return
        self._stopped = True
        config = self.config
        if polite:
            self._ask_to_exit(config.shutdown_grace)
        try:
            self._kill_group()
        except (GroupKillError, OSError, subprocess.SubprocessError) as error:
            log.error("worker %d (group %d) could not be killed: %s", self.number, self.pgid, error)
        if self.scratch_watcher is not None:
            self.scratch_watcher.stop(config.kill_timeout)
        self._sock.close()
        try:
            self.returncode = self._popen.wait(timeout=config.kill_timeout)
        except subprocess.TimeoutExpired:
            log.error(
                "worker %d (pid %d) did not exit after its group was killed", self.number, self.pgid
            )
        stderr: StderrCapture | None = getattr(self, "stderr", None)
        if stderr is not None:  # None only when its capture could not be set up
            stderr.finish(config.kill_timeout)

    def _ask_to_exit(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        try:
            self.send(deadline, "shutdown")
            while True:
                self.receive(deadline)
        except (_wire.ProtocolError, TimeoutError, OSError):
            return

    def _kill_group(self) -> None:
        config = self.config
        if config.mode is SpawnMode.STANDALONE:
            terminate_group(
                self.pgid, term_grace=_TERM_GRACE_SECONDS, kill_timeout=config.kill_timeout
            )
            remove_scratch_dir(self.scratch_dir, owner=os.getuid())
            return
        result = subprocess.run(
            config.reaper_command(self.pgid, self.scratch_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            close_fds=True,
            start_new_session=True,
            timeout=config.kill_timeout + 5,
            check=False,
        )
        if result.returncode != 0:
            raise GroupKillError(
                f"reaper exited {result.returncode}: "
                f"{result.stderr.decode('utf-8', 'replace').strip()[:500]}"
            )


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining
