"""The real sidecar daemon for the root tier, started as ``sidecar`` (never as root)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration._processes import (
    BASE_ENVIRONMENT,
    Account,
    stop_process,
    wait_for,
)
from tests.integration._provision import make_directory, write_private_file

KEY_SIZE = 32
STARTUP_TIMEOUT = 20.0


@dataclass
class DaemonHandle:
    """Where a running daemon listens, which key it uses, and what it logged."""

    socket_path: Path
    session_key_path: Path
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        if self.log_path is None:
            return ""
        return self.log_path.read_text("utf-8", "replace")

    def log_messages(self) -> list[str]:
        """The ``message`` of every JSON log line (the daemon logs JSON in the tier)."""
        messages = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                messages.append(json.loads(line)["message"])
        return messages


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(value)


def spawn_daemon(
    python: Path, sidecar: Account, config_path: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """``python -I -m elspeth.sidecar --config CONFIG`` as ``sidecar``, in its own session, with
    the base environment only; stdout and stderr go to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [str(python), "-I", "-m", "elspeth.sidecar", "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd="/",
            env=dict(BASE_ENVIRONMENT),
            close_fds=True,
            start_new_session=True,
            **sidecar.process_options(),
        )


@contextlib.contextmanager
def daemon_as_sidecar(
    *,
    python: Path,
    sidecar: Account,
    run_dir: Path,
    state_dir: Path,
    config_dir: Path,
    name: str,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[DaemonHandle]:
    """Start ``python -m elspeth.sidecar`` as ``sidecar`` with a fresh session key; stop it with
    SIGTERM at the end and check that it exited 0 and removed its socket.

    ``run_dir`` (0750 sidecar:sidecar) holds the key (0640 sidecar:sidecar) and the socket;
    ``state_dir`` (0700 sidecar) the checkpoint key and the audit log.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    make_directory(run_dir, 0o750, sidecar)
    make_directory(state_dir, 0o700, sidecar)
    key_path = write_private_file(
        run_dir / ".session", secrets.token_bytes(KEY_SIZE), 0o640, sidecar
    )
    socket_path = run_dir / "auth.sock"
    config = {
        "mode": "sidecar",
        "socket_path": str(socket_path),
        "session_key_path": str(key_path),
        "checkpoint_key_path": str(state_dir / "checkpoint.key"),
        "audit_log_path": str(state_dir / "audit.jsonl"),
        "allowed_users": ["appuser"],
        "socket_group": "sidecar",
        "log_format": "json",
        "log_level": "info",
        **(settings or {}),
    }
    config_path = config_dir / f"{name}.toml"
    config_path.write_text("".join(f"{key} = {_toml(value)}\n" for key, value in config.items()))
    config_path.chmod(0o644)
    log_path = config_dir / f"{name}.log"
    process = spawn_daemon(python, sidecar, config_path, log_path)
    handle = DaemonHandle(socket_path, key_path, log_path, process)
    try:
        wait_for(
            lambda: (
                process.poll() is not None
                or any(m.startswith("listening on") for m in handle.log_messages())
            ),
            STARTUP_TIMEOUT,
            f"the {name} daemon to listen",
        )
        if process.poll() is not None:
            raise AssertionError(
                f"the {name} daemon exited {process.returncode}:\n{handle.log_text()[-4000:]}"
            )
        yield handle
    finally:
        status = stop_process(process)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert status == 0, (
        f"the {name} daemon exited {status} on SIGTERM:\n{handle.log_text()[-2000:]}"
    )
    assert not os.path.lexists(socket_path)
