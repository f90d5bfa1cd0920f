"""The real daemon process refusing to start, with a message that says what to fix."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from elspeth.sidecar import SidecarClient, main
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
