"""Standalone mode: a private daemon as a child process, for laptops and tests.

Same daemon code, same protocol. The launcher makes a fresh 0700 directory holding a fresh
session key and a config with ``mode = "standalone"`` (the daemon then refuses levels above
OFFICIAL_SENSITIVE itself) that admits only the current uid. The checkpoint key persists in the
user's state directory so checkpoints survive between runs. The daemon stops when the launcher
exits (SIGTERM, then SIGKILL) and also on its own if its parent disappears.

Clean exits. The private directory (socket, session key, config, the daemon's stderr) is removed
on every exit path the launcher sees: :meth:`StandaloneDaemon.stop`, an exception or
``KeyboardInterrupt`` (SIGINT, and SIGTERM where the CLI turns it into one) at any point of the
start, and at interpreter exit for a daemon nobody stopped. SIGINT and SIGTERM are deferred
(main thread only) while the directory is made and the daemon spawned, so an interrupt never
lands between creating something and recording it. A launcher killed outright (``kill -9``)
cleans nothing: each directory holds an owner marker (:data:`OWNER_MARKER`: the launcher's pid,
its start time from ``/proc/<pid>/stat``, the boot id and pid namespace), and every start first
removes the leftovers (:func:`remove_leftovers`): our directories in the temp root whose owner
process is gone, or whose pid now belongs to another process. A live run's directory is never
touched. See ``docs/architecture.md`` (Standalone mode) for the rule.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Final, Self

from elspeth.sidecar._client._connection import SidecarClient
from elspeth.sidecar._errors import DaemonUnavailableError, KeyFileError
from elspeth.sidecar._protocol import KEY_SIZE

_log = logging.getLogger("elspeth.sidecar")

_MAX_SOCKET_PATH: Final = 107
_STOP_TIMEOUT: Final = 5.0
_STDERR_TAIL: Final = 4000

DIRECTORY_PREFIX: Final = "elspeth-sidecar-"
OWNER_MARKER: Final = ".elspeth-owner"
"""The file in each of our private directories naming the process that owns it."""
LEFTOVER_NAME: Final = re.compile(r"elspeth-(?:sidecar|validate|matplotlib)-[A-Za-z0-9_]{1,64}")
"""Directories directly in the temp root that :func:`remove_leftovers` considers."""
UNMARKED_AGE_SECONDS: Final = 24 * 3600
"""A directory without a (readable) marker, from an older version or a start killed before it
wrote one, counts as a leftover only once nothing in it changed for this long."""
_MARKER_MAX_BYTES: Final = 1024
_DIRECTORY_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/elspeth``, else ``~/.local/state/elspeth``."""
    base = os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "elspeth"


# --- who owns a directory -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Owner:
    """A process, identified so that a recycled pid does not pass for it."""

    pid: int
    start_ticks: int
    """Field 22 of ``/proc/<pid>/stat``: clock ticks from boot to the process's start."""
    boot_id: str
    pid_namespace: str

    @classmethod
    def of(cls, pid: int) -> Owner | None:
        """The live process ``pid`` as seen from here, or ``None`` if there is none."""
        start = process_start_ticks(pid)
        if start is None:
            return None
        return cls(pid, start, _boot_id(), _pid_namespace())

    @classmethod
    def current(cls) -> Owner:
        owner = cls.of(os.getpid())
        if owner is None:  # no /proc: nothing can be proven live or dead later either
            return cls(os.getpid(), -1, _boot_id(), _pid_namespace())
        return owner

    def to_bytes(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Owner | None:
        """The marker's owner, or ``None`` for anything malformed."""
        try:
            fields = json.loads(data)
        except ValueError:
            return None
        if not isinstance(fields, dict) or set(fields) != {f.name for f in dataclasses.fields(cls)}:
            return None
        pid, start, boot, namespace = (
            fields["pid"],
            fields["start_ticks"],
            fields["boot_id"],
            fields["pid_namespace"],
        )
        if not (
            type(pid) is int
            and pid > 0
            and type(start) is int
            and isinstance(boot, str)
            and isinstance(namespace, str)
        ):
            return None
        return cls(pid, start, boot, namespace)

    def is_gone(self) -> bool:
        """True when this process provably no longer runs: another boot, no such pid, or a pid
        whose process started at another time (recycled). A marker from another pid namespace
        (a container sharing the temp dir) cannot be judged and counts as live."""
        if self.boot_id and _boot_id() and self.boot_id != _boot_id():
            return True
        if self.pid_namespace != _pid_namespace() or self.start_ticks < 0:
            return False
        return process_start_ticks(self.pid) != self.start_ticks


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``; ``None`` when there is no such process or it is a
    zombie (it has exited; only its exit status is left)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            line = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: it ends at the last ')'.
    fields = line.rpartition(")")[2].split()
    try:
        state, start = fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None
    return None if state in ("Z", "X") else start


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def write_owner_marker(directory: Path, owner: Owner | None = None) -> None:
    """Write :data:`OWNER_MARKER` (0600, never through a link) into ``directory``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(directory / OWNER_MARKER, flags, 0o600)
    try:
        os.write(fd, (owner or Owner.current()).to_bytes())
    finally:
        os.close(fd)


def make_owned_directory(prefix: str, root: Path | None = None) -> Path:
    """A fresh 0700 directory ``<root>/<prefix>XXXXXXXX`` with this process's owner marker;
    removed again if the marker cannot be written."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        write_owner_marker(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


@contextlib.contextmanager
def owned_temporary_directory(prefix: str) -> Iterator[Path]:
    """Like :class:`tempfile.TemporaryDirectory`, with an owner marker so a later run can tell
    it from a live one if this process is killed before removing it."""
    directory: Path | None = None
    try:
        with interrupts_deferred():
            directory = make_owned_directory(prefix)
        yield directory
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def remove_leftovers(
    root: Path | None = None, names: re.Pattern[str] = LEFTOVER_NAME, *, what: str = "directory"
) -> list[Path]:
    """Remove the directories named like ``names`` directly in ``root`` (default: the temp
    root) that belong to runs whose process is gone; return what was removed.

    Only real directories (never a link, never followed) owned by this uid are considered. One
    with a readable marker is removed when its owner :meth:`~Owner.is_gone`; one without, when
    nothing directly in it changed for :data:`UNMARKED_AGE_SECONDS`. Everything else, a live
    run's directory above all, is left alone. Removal works through directory descriptors
    (``shutil.rmtree``), so a link inside cannot redirect it. Failures are logged, not raised.
    """
    root = Path(tempfile.gettempdir()) if root is None else Path(root)
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    removed: list[Path] = []
    try:
        for name in os.listdir(root_fd):
            if not names.fullmatch(name):
                continue
            try:
                reason = _leftover_reason(root_fd, name)
                if reason is None:
                    continue
                shutil.rmtree(name, dir_fd=root_fd)
            except OSError as error:
                _log.warning("could not remove the leftover %s %s: %s", what, root / name, error)
                continue
            _log.info("removed the leftover %s %s: %s", what, root / name, reason)
            removed.append(root / name)
    finally:
        os.close(root_fd)
    return removed


def _leftover_reason(root_fd: int, name: str) -> str | None:
    """Why ``name`` (in ``root_fd``) is a leftover, or ``None`` when it must stay."""
    try:
        info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return None
    fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=root_fd)
    try:
        # Replaced since we looked: judge it another time.
        return _verdict(fd, info) if os.path.samestat(info, os.fstat(fd)) else None
    finally:
        os.close(fd)


def _verdict(directory_fd: int, info: os.stat_result) -> str | None:
    owner = _read_marker(directory_fd)
    if owner is not None:
        return f"its run (pid {owner.pid}) is gone" if owner.is_gone() else None
    newest = max(
        [info.st_mtime]
        + [
            os.stat(entry, dir_fd=directory_fd, follow_symlinks=False).st_mtime
            for entry in os.listdir(directory_fd)
        ]
    )
    if time.time() - newest > UNMARKED_AGE_SECONDS:
        return f"no owner marker and unchanged for {UNMARKED_AGE_SECONDS // 3600} h"
    return None


def _read_marker(directory_fd: int) -> Owner | None:
    try:
        fd = os.open(
            OWNER_MARKER,
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=directory_fd,
        )
    except OSError:  # absent, or a link (ELOOP)
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        return Owner.from_bytes(os.read(fd, _MARKER_MAX_BYTES + 1)[:_MARKER_MAX_BYTES])
    finally:
        os.close(fd)


# --- interrupts -----------------------------------------------------------------------------


_DEFERRED_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block, then hand them to the handlers they would
    have reached (a ``KeyboardInterrupt`` is then raised at the end of the block).

    For short blocks that create something and record it: an interrupt can then never land
    between the two. Python runs signal handlers in the main thread only, so elsewhere this
    does nothing (no interrupt can arrive in another thread).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, FrameType | None]] = []

    def defer(signum: int, frame: FrameType | None) -> None:
        pending.append((signum, frame))

    previous: dict[int, Callable[[int, FrameType | None], Any] | int] = {}
    try:
        for deferred in _DEFERRED_SIGNALS:
            handler = signal.getsignal(deferred)
            if handler is None:  # installed outside Python: cannot be restored, leave it
                continue
            signal.signal(deferred, defer)
            previous[deferred] = handler
        yield
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)
        for received, frame in pending:
            original = previous[received]
            if callable(original):
                original(received, frame)
            elif original == signal.SIG_DFL:
                signal.raise_signal(received)


# --- the daemon -----------------------------------------------------------------------------


_RUNNING: Final[set[StandaloneDaemon]] = set()
"""Daemons started and not yet stopped; stopped at interpreter exit as a last resort."""


class StandaloneDaemon:
    """A running private daemon; use as a context manager or call :meth:`stop`."""

    def __init__(
        self, directory: Path, state_dir: Path, process: subprocess.Popen[bytes], stderr: IO[bytes]
    ) -> None:
        self.directory = directory
        self.state_dir = state_dir
        self.process = process
        self._stderr = stderr
        self._launcher = os.getpid()
        self.socket_path = directory / "auth.sock"
        self.session_key_path = directory / ".session"
        self.config_path = directory / "sidecar.toml"
        self.stderr_path = directory / "daemon.stderr"
        self.owner_marker_path = directory / OWNER_MARKER
        self.checkpoint_key_path = state_dir / "sidecar-checkpoint.key"
        self.audit_log_path = state_dir / "sidecar-audit.jsonl"
        self.returncode: int | None = None
        _RUNNING.add(self)

    def connect(self, *, timeout: float = 5.0, op_timeout: float = 30.0) -> SidecarClient:
        return SidecarClient.connect(
            self.socket_path, self.session_key_path, timeout=timeout, op_timeout=op_timeout
        )

    def stderr_text(self) -> str:
        """What the daemon wrote to stderr so far (its operational log)."""
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = _STOP_TIMEOUT) -> int:
        """SIGTERM, wait, SIGKILL if needed; remove the private directory. Returns the status.

        Idempotent. Interrupted while waiting, it still kills the daemon and removes the
        directory before the interrupt goes on.
        """
        if self.returncode is not None:
            return self.returncode
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _log.error("standalone sidecar did not stop within %g s; killing it", timeout)
                    self.process.kill()
                    self.process.wait()
        finally:
            if self.process.poll() is None:  # interrupted while waiting
                self.process.kill()
                self.process.wait()
            self.returncode = self.process.returncode
            self._stderr.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            _RUNNING.discard(self)
        return self.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@atexit.register
def _stop_at_exit() -> None:
    for daemon in list(_RUNNING):
        if daemon._launcher == os.getpid():  # not in a forked child
            daemon.stop()


def start_standalone_daemon(
    *,
    state_dir: Path | None = None,
    startup_timeout: float = 10.0,
    settings: Mapping[str, Any] | None = None,
) -> StandaloneDaemon:
    """Remove leftovers of dead runs, start a private standalone daemon, wait until it answers.

    ``settings`` adds or overrides config keys (e.g. a short ``grant_ttl_seconds`` in tests);
    the daemon validates them like any config file. Whatever happens during the start (an
    error, a timeout, ``KeyboardInterrupt``), the daemon is stopped and its directory removed.
    """
    state_dir = default_state_dir() if state_dir is None else Path(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    remove_leftovers()
    daemon: StandaloneDaemon | None = None
    try:
        with interrupts_deferred():
            daemon = _launch(state_dir, settings or {})
        _wait_until_answering(daemon, startup_timeout)
    except BaseException:
        if daemon is not None:
            daemon.stop()
        raise
    _log.warning(
        "STANDALONE MODE: a private sidecar daemon (pid %d) runs as this user on %s; levels "
        "above OFFICIAL_SENSITIVE are refused and no privilege separation applies",
        daemon.process.pid,
        daemon.socket_path,
    )
    return daemon


def _launch(state_dir: Path, settings: Mapping[str, Any]) -> StandaloneDaemon:
    """Make the directory and spawn the daemon; on any failure undo both. Runs with interrupts
    deferred, so nothing is made without being returned or undone."""
    directory = make_owned_directory(DIRECTORY_PREFIX)
    try:
        stderr = _prepare(directory, state_dir, settings)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "elspeth.sidecar", "--config", str(directory / "sidecar.toml")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            close_fds=True,
            # Its own session: a Ctrl-C meant for the orchestrator must not stop the daemon
            # under it; the launcher stops it, and it stops itself if the launcher vanishes.
            start_new_session=True,
        )
    except BaseException:
        stderr.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return StandaloneDaemon(directory, state_dir, process, stderr)


def _prepare(directory: Path, state_dir: Path, settings: Mapping[str, Any]) -> IO[bytes]:
    """Session key, config and the daemon's stderr file in ``directory``."""
    socket_path = directory / "auth.sock"
    if len(str(socket_path)) > _MAX_SOCKET_PATH:
        raise DaemonUnavailableError(
            f"socket path {socket_path} is longer than a Unix socket allows; set TMPDIR shorter"
        )
    key_path = directory / ".session"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_SIZE))
    finally:
        os.close(fd)
    config: dict[str, Any] = {
        "mode": "standalone",
        "socket_path": str(socket_path),
        "session_key_path": str(key_path),
        "checkpoint_key_path": str(state_dir / "sidecar-checkpoint.key"),
        "audit_log_path": str(state_dir / "sidecar-audit.jsonl"),
        "allowed_uids": [os.getuid()],
        "allowed_users": [],
        "socket_group": "",
        "parent_pid": os.getpid(),
        **settings,
    }
    config_path = directory / "sidecar.toml"
    config_path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in config.items()))
    return open(directory / "daemon.stderr", "wb")  # owned by StandaloneDaemon


def _wait_until_answering(daemon: StandaloneDaemon, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = daemon.process.poll()
        if status is not None:
            raise DaemonUnavailableError(
                f"standalone sidecar exited with status {status} while starting: "
                f"{daemon.stderr_text()[-_STDERR_TAIL:].strip()}"
            )
        with contextlib.suppress(DaemonUnavailableError, KeyFileError):
            with daemon.connect(timeout=max(0.1, deadline - time.monotonic())) as client:
                client.health()
            return
        if time.monotonic() >= deadline:
            raise DaemonUnavailableError(
                f"standalone sidecar did not answer within {timeout:g} s: "
                f"{daemon.stderr_text()[-_STDERR_TAIL:].strip()}"
            )
        time.sleep(0.02)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} into the standalone config")
