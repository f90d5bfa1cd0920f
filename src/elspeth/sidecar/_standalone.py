"""Standalone mode: a private daemon as a child process, for laptops and tests.

Same daemon code, same protocol. The launcher makes a fresh 0700 directory holding a fresh
session key and a config with ``mode = "standalone"`` (the daemon then refuses levels above
OFFICIAL_SENSITIVE itself) that admits only the current uid. The checkpoint key persists in the
user's state directory so checkpoints survive between runs. The daemon stops when the launcher
exits (SIGTERM, then SIGKILL) and also on its own if its parent disappears.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from elspeth.sidecar._client import SidecarClient
from elspeth.sidecar._errors import DaemonUnavailableError, KeyFileError
from elspeth.sidecar._protocol import KEY_SIZE

_log = logging.getLogger("elspeth.sidecar")

_MAX_SOCKET_PATH: Final = 107
_STOP_TIMEOUT: Final = 5.0
_STDERR_TAIL: Final = 4000


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/elspeth``, else ``~/.local/state/elspeth``."""
    base = os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "elspeth"


class StandaloneDaemon:
    """A running private daemon; use as a context manager or call :meth:`stop`."""

    def __init__(
        self, directory: Path, state_dir: Path, process: subprocess.Popen[bytes], stderr: Any
    ) -> None:
        self.directory = directory
        self.state_dir = state_dir
        self.process = process
        self._stderr = stderr
        self.socket_path = directory / "auth.sock"
        self.session_key_path = directory / ".session"
        self.config_path = directory / "sidecar.toml"
        self.stderr_path = directory / "daemon.stderr"
        self.checkpoint_key_path = state_dir / "sidecar-checkpoint.key"
        self.audit_log_path = state_dir / "sidecar-audit.jsonl"
        self.returncode: int | None = None

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
        """SIGTERM, wait, SIGKILL if needed; remove the private directory. Returns the status."""
        if self.returncode is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _log.error("standalone sidecar did not stop within %g s; killing it", timeout)
                    self.process.kill()
                    self.process.wait()
            self.returncode = self.process.returncode
            self._stderr.close()
            shutil.rmtree(self.directory, ignore_errors=True)
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


def start_standalone_daemon(
    *,
    state_dir: Path | None = None,
    startup_timeout: float = 10.0,
    settings: Mapping[str, Any] | None = None,
) -> StandaloneDaemon:
    """Start a private standalone daemon and wait until it answers.

    ``settings`` adds or overrides config keys (e.g. a short ``grant_ttl_seconds`` in tests);
    the daemon validates them like any config file.
    """
    state_dir = default_state_dir() if state_dir is None else Path(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="elspeth-sidecar-"))
    try:
        daemon = _launch(directory, state_dir, settings or {})
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        _wait_until_answering(daemon, startup_timeout)
    except BaseException:
        daemon.stop()
        raise
    _log.warning(
        "STANDALONE MODE: a private sidecar daemon (pid %d) runs as this user on %s; levels "
        "above OFFICIAL_SENSITIVE are refused and no privilege separation applies",
        daemon.process.pid,
        daemon.socket_path,
    )
    return daemon


def _launch(directory: Path, state_dir: Path, settings: Mapping[str, Any]) -> StandaloneDaemon:
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
    stderr = open(directory / "daemon.stderr", "wb")  # noqa: SIM115 - owned by StandaloneDaemon
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "elspeth.sidecar", "--config", str(config_path)],
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
        raise
    return StandaloneDaemon(directory, state_dir, process, stderr)


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
