"""Owner markers, the liveness check and the leftover sweep of standalone mode; a real daemon's
directory carries a marker, survives a sweep while it runs and is gone after any exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elspeth.sidecar._client import _standalone
from elspeth.sidecar._client._standalone import (
    OWNER_MARKER,
    UNMARKED_AGE_SECONDS,
    Owner,
    interrupts_deferred,
    process_start_ticks,
    remove_leftovers,
    start_standalone_daemon,
    write_owner_marker,
)

DEADLINE = 15.0


def dead_owner() -> Owner:
    """The owner record of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    owner = Owner.of(child.pid)
    assert child.stdin is not None
    child.stdin.close()
    child.wait(DEADLINE)
    assert owner is not None
    return owner


def make_dir(root: Path, name: str, owner: Owner | None = None) -> Path:
    directory = root / name
    directory.mkdir(mode=0o700)
    (directory / "auth.sock").write_bytes(b"")
    if owner is not None:
        write_owner_marker(directory, owner)
    return directory


def age(directory: Path, seconds: float) -> None:
    """Make ``directory`` and what is directly in it look ``seconds`` old."""
    then = time.time() - seconds
    for path in (*directory.iterdir(), directory):
        os.utime(path, (then, then), follow_symlinks=False)


# --- the liveness check ---------------------------------------------------------------------


def test_this_process_is_live_and_matches_proc_stat() -> None:
    me = Owner.current()
    assert me.pid == os.getpid()
    line = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert me.start_ticks == int(line.rpartition(")")[2].split()[19])  # field 22
    assert not me.is_gone()
    assert Owner.from_bytes(me.to_bytes()) == me


def test_a_recycled_pid_is_a_leftover() -> None:
    """The pid runs, but a process that started at another time than the owner's."""
    me = Owner.current()
    assert Owner(me.pid, me.start_ticks - 1, me.boot_id, me.pid_namespace).is_gone()
    assert Owner(me.pid, me.start_ticks + 1, me.boot_id, me.pid_namespace).is_gone()


def test_an_exited_process_is_gone() -> None:
    owner = dead_owner()
    assert process_start_ticks(owner.pid) is None or owner.is_gone()
    assert owner.is_gone()


def test_another_boot_is_gone_and_another_pid_namespace_is_not_judged() -> None:
    me = Owner.current()
    assert Owner(me.pid, me.start_ticks, "another-boot", me.pid_namespace).is_gone()
    # A container sharing the temp dir: its pids mean nothing here, so never remove its dirs.
    dead = dead_owner()
    assert not Owner(dead.pid, dead.start_ticks, dead.boot_id, "pid:[1]").is_gone()


def test_a_zombie_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner.of(child.pid)
    assert owner is not None
    deadline = time.monotonic() + DEADLINE
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    try:
        assert owner.is_gone()
    finally:
        child.wait(DEADLINE)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'{"pid": 1}',
        b'{"pid": "1", "start_ticks": 1, "boot_id": "", "pid_namespace": ""}',
        b'{"pid": true, "start_ticks": 1, "boot_id": "", "pid_namespace": ""}',
        b'{"pid": 0, "start_ticks": 1, "boot_id": "", "pid_namespace": ""}',
        b'{"pid": 1, "start_ticks": 1, "boot_id": "", "pid_namespace": "", "x": 1}',
    ],
)
def test_a_malformed_marker_is_no_marker(data: bytes) -> None:
    assert Owner.from_bytes(data) is None


# --- the sweep ------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "tmp"
    directory.mkdir()
    return directory


def test_the_sweep_removes_dead_and_recycled_owners_and_keeps_live_ones(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    me = Owner.current()
    live = make_dir(root, "elspeth-sidecar-live0001", me)
    dead = make_dir(root, "elspeth-sidecar-dead0001", dead_owner())
    recycled = make_dir(
        root,
        "elspeth-validate-recyc001",
        Owner(me.pid, me.start_ticks - 7, me.boot_id, me.pid_namespace),
    )
    matplotlib = make_dir(root, "elspeth-matplotlib-dead0002", dead_owner())
    unrelated = make_dir(root, "someone-else-sidecar-x", dead_owner())
    wrong_name = make_dir(root, "elspeth-sidecar-bad.name", dead_owner())
    caplog.set_level("INFO", logger="elspeth.sidecar")

    removed = remove_leftovers(root)

    assert sorted(removed) == sorted([dead, recycled, matplotlib])
    assert live.is_dir()
    assert (live / OWNER_MARKER).is_file()
    assert unrelated.is_dir()
    assert wrong_name.is_dir()
    assert not dead.exists()
    assert not recycled.exists()
    assert not matplotlib.exists()
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelname == "INFO")
    assert str(dead) in logged
    assert "is gone" in logged


def test_a_symlink_named_like_ours_is_neither_followed_nor_removed(root: Path) -> None:
    outside = make_dir(root.parent, "outside", dead_owner())
    (outside / "keep.txt").write_text("keep")
    link = root / "elspeth-sidecar-x"
    link.symlink_to(outside, target_is_directory=True)
    dangling = root / "elspeth-sidecar-y"
    dangling.symlink_to(root.parent / "nowhere")

    assert remove_leftovers(root) == []

    assert link.is_symlink()
    assert dangling.is_symlink()
    assert (outside / "keep.txt").read_text() == "keep"
    assert (outside / OWNER_MARKER).is_file()


def test_links_inside_a_leftover_are_removed_not_followed(root: Path) -> None:
    outside = root.parent / "precious"
    outside.mkdir()
    (outside / "data.csv").write_text("row")
    dead = make_dir(root, "elspeth-sidecar-dead0003", dead_owner())
    (dead / "escape").symlink_to(outside, target_is_directory=True)
    (dead / "nested").mkdir()
    (dead / "nested" / "escape").symlink_to(outside / "data.csv")

    assert remove_leftovers(root) == [dead]

    assert not dead.exists()
    assert (outside / "data.csv").read_text() == "row"


def test_a_marker_that_is_a_link_counts_as_no_marker(root: Path) -> None:
    target = root.parent / "forged-marker"
    target.write_bytes(dead_owner().to_bytes())
    directory = make_dir(root, "elspeth-sidecar-forged01")
    (directory / OWNER_MARKER).symlink_to(target)

    assert remove_leftovers(root) == []  # unmarked and young: left alone
    assert directory.is_dir()
    assert target.is_file()


def test_unmarked_directories_are_left_alone_until_they_are_old(root: Path) -> None:
    young = make_dir(root, "elspeth-sidecar-young001")
    old = make_dir(root, "elspeth-validate-old00001")
    malformed = make_dir(root, "elspeth-sidecar-malform1")
    (malformed / OWNER_MARKER).write_bytes(b"{not json")
    age(old, UNMARKED_AGE_SECONDS + 60)
    age(malformed, UNMARKED_AGE_SECONDS + 60)
    touched = make_dir(root, "elspeth-sidecar-touched1")
    age(touched, UNMARKED_AGE_SECONDS + 60)
    (touched / "daemon.stderr").write_text("still writing")  # one entry changed just now

    assert sorted(remove_leftovers(root)) == sorted([old, malformed])
    assert young.is_dir()
    assert touched.is_dir()


def test_files_and_other_users_directories_are_left_alone(root: Path) -> None:
    (root / "elspeth-sidecar-file0001").write_bytes(dead_owner().to_bytes())
    foreign = make_dir(root, "elspeth-sidecar-foreign1", dead_owner())
    if os.getuid() == 0:
        os.chown(foreign, 54321, 54321)
        assert remove_leftovers(root) == []
        assert foreign.is_dir()
    else:
        assert remove_leftovers(root) == [foreign]  # ours: only root can make one that is not
    assert (root / "elspeth-sidecar-file0001").is_file()


def test_a_missing_root_is_nothing_to_do(tmp_path: Path) -> None:
    assert remove_leftovers(tmp_path / "absent") == []


# --- interrupts -----------------------------------------------------------------------------


def test_an_interrupt_inside_a_deferred_block_is_raised_at_its_end() -> None:
    reached = []

    def deferred_block() -> None:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            # A real signal is handled at the next bytecode boundary; deferral holds it back.
            for _ in range(1000):
                time.sleep(0)
            reached.append("end of block")

    with pytest.raises(KeyboardInterrupt):
        deferred_block()
    assert reached == ["end of block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_deferred_sigterm_reaches_the_handler_it_was_meant_for() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                time.sleep(0)
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- a real daemon --------------------------------------------------------------------------


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tempfile.gettempdir()`` is this private directory for the test."""
    root = Path(tempfile.mkdtemp(prefix="elx-"))  # short: the socket path must fit
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
    for leftover in root.iterdir():
        subprocess.run(["rm", "-rf", "--one-file-system", str(leftover)], check=False)
    root.rmdir()


def sidecar_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("elspeth-sidecar-*"))


def test_a_running_daemon_is_marked_survives_a_sweep_and_is_removed_on_stop(
    temp_root: Path, tmp_path: Path
) -> None:
    with start_standalone_daemon(state_dir=tmp_path / "state") as daemon:
        assert daemon.directory.parent == temp_root
        marker = json.loads(daemon.owner_marker_path.read_bytes())
        assert marker["pid"] == os.getpid()
        assert marker["start_ticks"] == process_start_ticks(os.getpid())
        assert daemon.owner_marker_path.stat().st_mode & 0o777 == 0o600
        # A second standalone run while this one is live: it leaves this directory alone.
        with start_standalone_daemon(state_dir=tmp_path / "state") as second:
            assert sidecar_dirs(temp_root) == sorted([daemon.directory, second.directory])
        assert sidecar_dirs(temp_root) == [daemon.directory]
        with daemon.connect() as client:
            client.health()
    assert sidecar_dirs(temp_root) == []
    assert daemon.process.poll() is not None


def test_a_failed_start_leaves_no_directory(temp_root: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="grant_ttl_seconds"):
        start_standalone_daemon(state_dir=tmp_path / "state", settings={"grant_ttl_seconds": -1})
    assert sidecar_dirs(temp_root) == []


def test_an_interrupt_while_the_daemon_starts_stops_it_and_removes_its_directory(
    temp_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT to this process while it waits for the real daemon to answer."""
    started: list[Any] = []
    wait = _standalone._wait_until_answering

    def interrupted_wait(daemon: Any, timeout: float) -> None:
        started.append(daemon)
        assert daemon.directory.is_dir()
        os.kill(os.getpid(), signal.SIGINT)
        wait(daemon, timeout)

    monkeypatch.setattr(_standalone, "_wait_until_answering", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        start_standalone_daemon(state_dir=tmp_path / "state")
    assert len(started) == 1
    assert started[0].process.poll() is not None, "the daemon was left running"
    assert sidecar_dirs(temp_root) == []


def test_a_daemon_nobody_stopped_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="elx-"))
    try:
        script = (
            "import sys; from pathlib import Path\n"
            "from elspeth.sidecar import start_standalone_daemon\n"
            f"daemon = start_standalone_daemon(state_dir=Path({str(tmp_path / 'state')!r}))\n"
            "print(daemon.process.pid, flush=True)\n"
        )
        completed = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "TMPDIR": str(root)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        daemon_pid = int(completed.stdout.split()[0])
        assert process_start_ticks(daemon_pid) is None  # stopped and reaped before exit
        assert list(root.iterdir()) == []
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
