"""Fixtures: real standalone daemons, clients, and a raw connection for hand-made requests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from elspeth.sidecar import SidecarClient, StandaloneDaemon, start_standalone_daemon
from elspeth.sidecar._protocol import (
    LENGTH_PREFIX,
    Greeting,
    MacKey,
    Reply,
    encode_request,
    frame,
    parse_greeting,
    parse_reply,
)

DIGEST_A = bytes(range(32))
DIGEST_B = bytes(range(1, 33))


class RawConnection:
    """Speaks the protocol by hand, so tests can send what no honest client would."""

    def __init__(self, socket_path: Path, key: bytes, *, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(socket_path))
        self.mac = MacKey(key)
        self.buffer = bytearray()
        self.greeting_body = self.read_frame()
        self.greeting: Greeting = parse_greeting(self.mac, self.greeting_body)
        self.seq = 0

    def request_bytes(
        self, op: str, args: Mapping[str, Any], *, seq: int | None = None, key: bytes | None = None
    ) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        mac = self.mac if key is None else MacKey(key)
        return frame(encode_request(mac, self.greeting.nonce, seq, op, args))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, op: str, args: Mapping[str, Any]) -> Reply:
        self.send(self.request_bytes(op, args))
        return self.reply()

    def reply(self) -> Reply:
        return parse_reply(self.mac, self.greeting.nonce, self.read_frame())

    def read_frame(self) -> bytes:
        while True:
            if len(self.buffer) >= 4:
                (length,) = LENGTH_PREFIX.unpack_from(self.buffer)
                if len(self.buffer) >= 4 + length:
                    body = bytes(self.buffer[4 : 4 + length])
                    del self.buffer[: 4 + length]
                    return body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("daemon closed the connection")
            self.buffer += chunk

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the daemon has closed the connection (EOF or reset) within ``timeout``."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return True
            if not data:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneDaemon]:
    """One standalone daemon per test module (a fresh key and boot id each)."""
    with start_standalone_daemon(
        state_dir=tmp_path_factory.mktemp("state"), settings={"grant_ttl_seconds": 2.0}
    ) as running:
        yield running


@pytest.fixture
def client(daemon: StandaloneDaemon) -> Iterator[SidecarClient]:
    with daemon.connect(op_timeout=10.0) as connected:
        yield connected


@pytest.fixture
def session_key(daemon: StandaloneDaemon) -> bytes:
    return daemon.session_key_path.read_bytes()


@pytest.fixture
def raw(daemon: StandaloneDaemon, session_key: bytes) -> Iterator[RawConnection]:
    connection = RawConnection(daemon.socket_path, session_key)
    yield connection
    connection.close()


@pytest.fixture
def fresh_daemon(tmp_path: Path) -> Iterator[Callable[..., StandaloneDaemon]]:
    """A factory for daemons private to one test (settings vary), all stopped afterwards."""
    started: list[StandaloneDaemon] = []

    def start(**settings: Any) -> StandaloneDaemon:
        running = start_standalone_daemon(state_dir=tmp_path / "state", settings=settings)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def write_config(directory: Path, **values: Any) -> Path:
    """A config file with private paths under ``directory``; ``values`` add or override keys."""
    from elspeth.sidecar._client._standalone import _toml_value

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "mode": "standalone",
        "socket_path": str(directory / "auth.sock"),
        "session_key_path": str(directory / ".session"),
        "checkpoint_key_path": str(directory / "checkpoint.key"),
        "audit_log_path": str(directory / "audit.jsonl"),
        "allowed_uids": [os.getuid()],
        "allowed_users": [],
        "socket_group": "",
    }
    base.update(values)
    path = directory / "sidecar.toml"
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in base.items() if v is not None))
    return path


def run_daemon(config: Path, *, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    """Run the daemon to completion (for start-up failures); returns status and output."""
    return subprocess.run(
        [sys.executable, "-m", "elspeth.sidecar", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "elspeth.sidecar", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_socket(path: Path, process: subprocess.Popen[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(
                f"daemon exited early: {process.stderr.read() if process.stderr else ''}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"socket {path} did not appear within {timeout} s")
        time.sleep(0.02)
