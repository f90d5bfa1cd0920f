"""The real daemon process refusing to start, with a message that says what to fix."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from elspeth.sidecar import KeyFileError, SidecarClient, main
from tests.sidecar.conftest import run_daemon, start_daemon, write_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("mode = \n", "not valid TOML"),
        ('mode = "standalone"\nsocket_pth = "/tmp/x"\n', "socket_pth"),
        ("max_batch = 0\n", "'max_batch'"),
        ('grant_ttl_seconds = "soon"\n', "'grant_ttl_seconds'"),
        ('log_format = "xml"\n', "'log_format'"),
    ],
)
def test_bad_config_file_exits_non_zero_naming_the_key(
    tmp_path: Path, content: str, expected: str
) -> None:
    config = tmp_path / "sidecar.toml"
    config.write_text(content)
    result = run_daemon(config)
    assert result.returncode == 2
    assert expected in result.stderr
    assert str(config) in result.stderr


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    result = run_daemon(tmp_path / "nowhere.toml")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_bad_rust_log_value_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "d")
    monkeypatch.setenv("RUST_LOG", "chatty")
    result = run_daemon(config)
    assert result.returncode == 2
    assert "RUST_LOG" in result.stderr


def test_unknown_allowed_user_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "d", allowed_users=["no-such-user-elspeth"])
    result = run_daemon(config)
    assert result.returncode == 2
    assert "allowed_users" in result.stderr
    assert "no-such-user-elspeth" in result.stderr


@pytest.mark.parametrize(
    ("data", "mode", "expected"),
    [
        (os.urandom(31), 0o640, "exactly 32"),
        (os.urandom(33), 0o640, "exactly 32"),
        (os.urandom(32), 0o644, "chmod 0640"),
        (os.urandom(32), 0o660, "chmod 0640"),
    ],
    ids=["short", "long", "other-readable", "group-writable"],
)
def test_bad_session_key_file_is_refused_with_the_fix(
    tmp_path: Path, data: bytes, mode: int, expected: str
) -> None:
    directory = tmp_path / "d"
    config = write_config(directory)
    key = directory / ".session"
    key.write_bytes(data)
    key.chmod(mode)
    result = run_daemon(config)
    assert result.returncode == 1
    assert expected in result.stderr
    assert str(key) in result.stderr
    assert data.hex() not in result.stderr


def test_bad_checkpoint_key_mode_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    config = write_config(directory)
    checkpoint = directory / "checkpoint.key"
    checkpoint.write_bytes(os.urandom(32))
    checkpoint.chmod(0o640)
    result = run_daemon(config)
    assert result.returncode == 1
    assert f"chmod 0600 {checkpoint}" in result.stderr


def test_absent_keys_are_created_with_safe_modes(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    config = write_config(directory, log_format="text")
    process = start_daemon(config)
    try:
        client = SidecarClient.wait_until_ready(
            directory / "auth.sock", directory / ".session", timeout=10
        )
        assert client.health()["status"] == "ok"
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert (directory / ".session").stat().st_mode & 0o777 == 0o640
    assert (directory / "checkpoint.key").stat().st_mode & 0o777 == 0o600
    assert "created a new session key file" in stderr
    assert "STANDALONE MODE" in stderr


def test_main_reports_config_errors_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sidecar.toml"
    config.write_text("max_connections = -5\n")
    assert main(["--config", str(config)]) == 2
    assert "'max_connections'" in capsys.readouterr().err


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o640)


def _directory(path: Path) -> None:
    path.mkdir(mode=0o750)


def _symlink(path: Path) -> None:
    target = path.with_name("real-key")
    target.write_bytes(os.urandom(32))
    target.chmod(0o640)
    path.symlink_to(target)


@pytest.mark.parametrize(
    ("make", "expected"),
    [(_fifo, "is a FIFO"), (_directory, "is a directory"), (_symlink, "is a symlink")],
    ids=["fifo", "directory", "symlink"],
)
@pytest.mark.parametrize("which", [".session", "checkpoint.key"])
def test_non_regular_key_file_is_refused_promptly(
    tmp_path: Path, make: Callable[[Path], None], expected: str, which: str
) -> None:
    # A FIFO used to hang the daemon in open() (waiting for a writer) with no message; now it
    # is opened non-blocking and refused on its fstat. The deadline turns a hang into a failure.
    directory = tmp_path / "d"
    config = write_config(directory)
    key = directory / which
    make(key)
    result = run_daemon(config, timeout=10.0)
    assert result.returncode == 1
    assert f"{key} {expected}" in result.stderr
    assert "cannot start" in result.stderr


def test_client_refuses_a_fifo_session_key_promptly(tmp_path: Path) -> None:
    key = tmp_path / ".session"
    os.mkfifo(key, 0o640)
    done = threading.Event()

    def unblock() -> None:
        # Should the client block in open() (waiting for a writer), be that writer after the
        # deadline, so the test fails instead of hanging.
        if done.wait(5.0):
            return
        while not done.is_set():
            try:
                os.close(os.open(key, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                time.sleep(0.05)
            else:
                return

    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyFileError, match=f"{key} is a FIFO"):
            SidecarClient.wait_until_ready(tmp_path / "auth.sock", key, timeout=5.0)
    finally:
        done.set()
        watchdog.join()
    assert time.monotonic() - started < 3.0
