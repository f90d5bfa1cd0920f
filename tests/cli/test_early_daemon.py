"""``elspeth run`` starts a standalone run's daemon while it loads the settings
(``elspeth.cli._early``): which settings files it does that for, and that a run refused
before it takes the daemon leaves nothing behind and says nothing more."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from elspeth.cli._early import looks_standalone, peek, state_used, uses_http
from tests.suite.conftest import SuiteFiles, run_cli, run_cli_subprocess


@pytest.mark.parametrize(
    ("text", "standalone"),
    [
        ("suite: {name: x}\n", True),
        ("sidecar: {mode: standalone}\n", True),
        ("sidecar: {mode: sidecar}\n", False),
        ("sidecar: {mode: '${MODE}'}\n", False),
        ("sidecar: standalone\n", False),
        ("- a list\n", False),
        ("key: [unclosed\n", False),
        ("", False),
    ],
)
def test_which_settings_look_standalone(tmp_path: Path, text: str, standalone: bool) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text, "utf-8")
    assert looks_standalone(peek(path)) is standalone


@pytest.mark.parametrize(
    ("text", "http"),
    [
        ("models: {a: {type: mock}}\n", False),
        ("models: {a: {type: mock}, b: {type: openai}}\n", True),
        ("models: {a: {type: azure_openai}}\n", True),
        ("models: [openai]\n", False),
        ("suite: {name: x}\n", False),
    ],
)
def test_which_settings_use_an_http_model(tmp_path: Path, text: str, http: bool) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text, "utf-8")
    assert uses_http(peek(path)) is http


def test_a_missing_file_or_a_pipe_is_not_read(tmp_path: Path) -> None:
    assert peek(tmp_path / "missing.yaml") is None
    read, write = os.pipe()
    try:
        os.write(write, b"suite: {name: x}\n")
        assert peek(Path(f"/dev/fd/{read}")) is None
        assert os.read(read, 100) == b"suite: {name: x}\n"  # left for the real load
    finally:
        os.close(read)
        os.close(write)


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="elx-"))
    yield root
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def test_a_first_run_starts_no_daemon_early(tmp_path: Path) -> None:
    assert not state_used(tmp_path / "state")
    (tmp_path / "state").mkdir()
    assert not state_used(tmp_path / "state")  # made by hand, or by a run refused before
    (tmp_path / "state" / "sidecar-checkpoint.key").write_bytes(b"k")
    assert state_used(tmp_path / "state")


def test_bad_settings_on_a_first_run_leave_no_state_directory(
    suite: SuiteFiles, private_tmp: Path
) -> None:
    suite.settings["defaults"]["concurency"] = 3
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    result = run_cli_subprocess(*suite.args(), env=env)

    assert result.code == 2, result.stderr
    assert not suite.state_dir.exists()
    assert not list(private_tmp.glob("elspeth-sidecar-*"))


def test_a_run_takes_the_early_daemon_and_bad_settings_stop_it_unseen(
    suite: SuiteFiles, private_tmp: Path
) -> None:
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    first = run_cli_subprocess(*suite.args("--log-level", "info"), env=env)
    assert first.code == 0, first.stderr
    assert state_used(suite.state_dir)
    again = run_cli_subprocess(*suite.args("--log-level", "info"), env=env)  # starts it early

    assert again.code == 0, again.stderr
    assert again.stderr.count("STANDALONE MODE: a private sidecar daemon (pid") == 1
    assert "STANDALONE MODE: a private sidecar daemon runs for this run only" in again.output
    assert len(suite.run_dirs()) == 2
    assert not list(private_tmp.glob("elspeth-sidecar-*")), "the daemon's directory is removed"

    state = sorted(path.name for path in suite.state_dir.iterdir())
    suite.settings["defaults"]["concurency"] = 3  # still looks standalone; fails validation
    refused = run_cli_subprocess(*suite.args("--log-level", "debug"), env=env)

    assert refused.code == 2, refused.stderr
    assert "defaults.concurency: unknown key" in refused.stderr
    assert "STANDALONE MODE" not in refused.stderr + refused.output
    assert "elspeth.sidecar" not in refused.stderr  # nothing the daemon's start logged
    assert not list(private_tmp.glob("elspeth-sidecar-*"))
    assert sorted(path.name for path in suite.state_dir.iterdir()) == state
    assert len(suite.run_dirs()) == 2


def test_bad_settings_leave_the_umask_as_it_was(suite: SuiteFiles) -> None:
    suite.state_dir.mkdir()
    (suite.state_dir / "used").write_bytes(b"")  # as if a run had used it: started early
    suite.settings["defaults"]["concurency"] = 3
    before = os.umask(0o022)
    try:
        result = run_cli(*suite.args())
        after = os.umask(before)
    finally:
        os.umask(before)
    assert result.code == 2, result.stderr
    assert after == 0o022
