"""The reaper run as a real command against real process groups (standalone: same user, no sudo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from elspeth.orchestrator._groups import live_members
from elspeth.orchestrator._runtime._process import WorkerProcess
from elspeth.orchestrator.reaper._main import EXIT_DONE, EXIT_REFUSED
from elspeth.security import SecurityLevel
from tests.orchestrator.conftest import runtime_config

pytestmark = pytest.mark.integration


def reaper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-m", "elspeth.orchestrator.reaper", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_reaper_kills_a_worker_group_of_its_caller_and_removes_the_scratch_dir(
    tmp_path: Path,
) -> None:
    worker = WorkerProcess(runtime_config(tmp_path), SecurityLevel.OFFICIAL)
    try:
        assert os.path.isdir(worker.scratch_dir)
        done = reaper(str(worker.pgid), worker.scratch_dir)
        assert done.returncode == EXIT_DONE, done.stderr
        assert not live_members(worker.pgid)
        assert not os.path.exists(worker.scratch_dir)
    finally:
        worker.stop(polite=False)


@pytest.mark.parametrize(
    ("pgid", "scratch", "reason"),
    [
        ("12x", "/tmp/worker-0123456789abcdef", "positive decimal"),
        ("-1", "/tmp/worker-0123456789abcdef", "positive decimal"),
        (
            "1",
            "/tmp/worker-0123456789abcdef",
            "not a child of the calling orchestrator|own session",
        ),
        ("{pid}", "/etc", "not a worker scratch path"),
        ("{pid}", "/tmp/../etc/worker-0123456789abcdef", "not a worker scratch path"),
        ("{pid}", "/tmp/worker-0123456789abcdef", "neither sudo nor an elspeth worker"),
    ],
)
def test_reaper_refuses_anything_but_a_worker_group_of_its_caller(
    pgid: str, scratch: str, reason: str
) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        refused = reaper(pgid.format(pid=other.pid), scratch)
        assert refused.returncode == EXIT_REFUSED
        assert "refused" in refused.stderr
        assert any(part in refused.stderr for part in reason.split("|"))
        assert other.poll() is None  # untouched
    finally:
        other.kill()
        other.wait()
