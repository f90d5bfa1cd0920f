"""Clean exits of a standalone run, with the real CLI as a subprocess and a private ``TMPDIR``:
SIGINT and SIGTERM mid-run remove the private daemon directory and the workers' scratch, and
stop the daemon and the workers; after ``kill -9`` the daemon leaves by itself and the next run
removes the dead run's directories, never a live run's; matplotlib's font cache is built once
per user."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from elspeth.sidecar._client._standalone import Owner, write_owner_marker
from tests.suite.conftest import (
    CLI_TIMEOUT,
    SuiteFiles,
    build_suite,
    cli_command,
    manifest,
    scoring_plugins,
)
from tests.support.fixtures import MakeServer
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration

EXIT_INTERRUPTED = 130
#: Slow enough that the run is still asking the model when it is signalled.
LATENCY = 0.5
#: Under the suite's 10 s model timeout; at concurrency 2, ROWS answers take 75 s.
LIVE_LATENCY = 5.0
ROWS = 30


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """The runs' ``TMPDIR``: short (the daemon's socket path must fit) and private."""
    root = Path(tempfile.mkdtemp(prefix="elx-"))
    yield root
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def environment(tmp: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    env.update(TMPDIR=str(tmp), XDG_CACHE_HOME=str(cache))
    return env


def ours(tmp: Path) -> list[Path]:
    """Every private directory a run leaves in ``tmp``: daemon, validate, matplotlib, and the
    workers' scratch directories in the default scratch root."""
    found = [p for p in tmp.iterdir() if p.name.startswith("elspeth-") and p.is_dir()]
    workers = tmp / f"elspeth-workers-{os.getuid()}"
    direct = [p for p in found if p != workers]
    return sorted(direct + (sorted(workers.glob("worker-*")) if workers.is_dir() else []))


def sidecar_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("elspeth-sidecar-*"))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = CLI_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def children_of(pid: int) -> list[Owner]:
    """The processes whose parent is ``pid`` (the daemon and the workers of a CLI run)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{name}/stat").read_text()
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                owner = Owner.of(int(name))
                if owner is not None:
                    found.append(owner)
    return found


def daemon_of(children: list[Owner]) -> Owner:
    daemons = [
        c for c in children if b"elspeth.sidecar" in Path(f"/proc/{c.pid}/cmdline").read_bytes()
    ]
    assert len(daemons) == 1, f"expected one daemon among {children}"
    return daemons[0]


class Run:
    """One CLI run in the background; stderr goes to a file to read on failure."""

    def __init__(self, suite: SuiteFiles, env: dict[str, str], log: Path) -> None:
        self.suite = suite
        self.log = log
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                cli_command(*suite.args()),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # a signal reaches only the process the test names
            )

    def stderr(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        def holds() -> bool:
            assert self.process.poll() is None, f"the run ended first:\n{self.stderr()}"
            return condition()

        wait_for(holds, what)

    def wait(self) -> int:
        try:
            return self.process.wait(CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not exit after its signal:\n{self.stderr()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(CLI_TIMEOUT)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill()


def slow_suite(
    make_server: MakeServer, directory: Path, latency: float = LATENCY
) -> tuple[SuiteFiles, OpenAIServer]:
    """A suite against a slow loopback model (it is still asking when the test signals it), with
    plugins, so workers run too (the catalog worker from the start)."""
    server = make_server(latency=latency)
    suite = build_suite(directory, server, rows=ROWS)
    suite.settings["plugins"] = scoring_plugins("OFFICIAL")
    suite.defaults.update(concurrency=2, row_plugins=["score"], aggregators=["summary"])
    return suite, server


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_removes_its_private_directories_and_stops_its_processes(
    signum: signal.Signals,
    make_server: MakeServer,
    api_key: str,
    tmp_path: Path,
    private_tmp: Path,
    runs: list[Run],
) -> None:
    suite, server = slow_suite(make_server, tmp_path / "suite")
    run = Run(suite, environment(private_tmp, tmp_path / "cache"), tmp_path / "run.stderr")
    runs.append(run)
    run.wait_until(lambda: server.stats.request_count > 0, "the model is asked")
    assert sidecar_dirs(private_tmp), "the run's daemon directory is not in its TMPDIR"
    children = children_of(run.process.pid)
    daemon_of(children)

    run.process.send_signal(signum)
    code = run.wait()

    assert ours(private_tmp) == [], run.stderr()
    wait_for(lambda: all(c.is_gone() for c in children), "the daemon and the workers are gone", 15)
    assert code == EXIT_INTERRUPTED, run.stderr()
    assert manifest(suite.only_run_dir())["status"] == "stopped"
    assert server.stats.request_count < ROWS, "the run finished before it was signalled"


def test_after_kill_9_the_next_run_removes_the_dead_runs_directories_and_no_live_ones(
    make_server: MakeServer,
    api_key: str,
    tmp_path: Path,
    private_tmp: Path,
    runs: list[Run],
) -> None:
    env = environment(private_tmp, tmp_path / "cache")
    # A run that stays live throughout: no other run's start may touch its directories.
    # Its answers take LIVE_LATENCY each, so it lasts minutes however slow the machine is.
    live_suite, live_server = slow_suite(make_server, tmp_path / "live", latency=LIVE_LATENCY)
    live = Run(live_suite, env, tmp_path / "live.stderr")
    runs.append(live)
    live.wait_until(lambda: live_server.stats.request_count > 0, "the live run asks the model")
    live_dirs = ours(private_tmp)
    assert any(d.name.startswith("elspeth-sidecar-") for d in live_dirs)
    assert any(d.name.startswith("worker-") for d in live_dirs)

    # The run that is killed outright.
    killed_suite, killed_server = slow_suite(make_server, tmp_path / "killed")
    killed = Run(killed_suite, env, tmp_path / "killed.stderr")
    runs.append(killed)
    killed.wait_until(lambda: killed_server.stats.request_count > 0, "the model is asked")
    children = children_of(killed.process.pid)
    daemon = daemon_of(children)
    dead_dirs = [d for d in ours(private_tmp) if d not in live_dirs]
    assert any(d.name.startswith("elspeth-sidecar-") for d in dead_dirs)
    assert any(d.name.startswith("worker-") for d in dead_dirs)
    assert all(d.exists() for d in live_dirs), "the killed run's start removed a live run's"
    killed.process.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    # The daemon notices its parent is gone and stops by itself; so do the workers.
    wait_for(daemon.is_gone, "the orphaned daemon stops by itself", 15)
    wait_for(lambda: all(c.is_gone() for c in children), "the orphaned workers stop", 15)
    assert all(d.exists() for d in dead_dirs), "nothing but the next run may remove them"

    # Directories whose owner is this test process: live too.
    mine = private_tmp / "elspeth-sidecar-testlive"
    mine.mkdir(mode=0o700)
    write_owner_marker(mine)
    my_scratch = private_tmp / f"elspeth-workers-{os.getuid()}" / f"worker-{secrets.token_hex(12)}"
    my_scratch.mkdir(mode=0o700)
    write_owner_marker(my_scratch)

    # The next run, to completion (the offline mock model), with the same TMPDIR.
    after = build_suite(tmp_path / "after", None, rows=4)
    completed = run_to_completion(after, env)

    left = ours(private_tmp)
    assert not any(d in left for d in dead_dirs), completed.stderr
    assert live.process.poll() is None, "the live run ended before the check"
    # The live run may itself replace a worker (and remove its scratch directory) meanwhile;
    # what must hold is that the next run removed none of the live run's directories, and
    # that the live daemon's directory, which lasts as long as its run, is still there.
    removed_by_next = [d for d in live_dirs if f" {d}: " in completed.stderr]
    assert not removed_by_next, f"the next run removed a live run's directories: {removed_by_next}"
    assert all(d in left for d in live_dirs if d.name.startswith("elspeth-sidecar-"))
    assert mine.is_dir()
    assert my_scratch.is_dir()
    sidecar_dead = next(d for d in dead_dirs if d.name.startswith("elspeth-sidecar-"))
    assert f"removed the leftover directory {sidecar_dead}" in completed.stderr
    assert "removed the leftover worker scratch dir" in completed.stderr

    live.process.send_signal(signal.SIGINT)
    live.wait()
    assert all(not d.exists() for d in live_dirs), live.stderr()


def run_to_completion(suite: SuiteFiles, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI on ``suite`` with ``env``, which must exit 0."""
    completed = subprocess.run(
        cli_command(*suite.args()),
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed


# --- matplotlib's font cache ----------------------------------------------------------------


def report_suite(directory: Path) -> SuiteFiles:
    suite = build_suite(directory, None, rows=4)
    suite.settings["sinks"]["report_html"] = {"type": "html_report", "clearance": "OFFICIAL"}
    suite.settings["reports"] = ["report_html"]
    return suite


def run_report(suite: SuiteFiles, env: dict[str, str]) -> Path:
    run_to_completion(suite, env)
    reports = list(suite.only_run_dir().glob("*.html"))
    assert reports
    assert reports[0].stat().st_size > 0
    return reports[0]


def test_two_runs_share_one_per_user_font_cache(tmp_path: Path, private_tmp: Path) -> None:
    cache_home = tmp_path / "cache"
    env = environment(private_tmp, cache_home)
    cache = cache_home / "elspeth" / "matplotlib"

    run_report(report_suite(tmp_path / "first"), env)
    fonts = list(cache.glob("fontlist-v*.json"))
    assert len(fonts) == 1, sorted(cache.iterdir()) if cache.exists() else "no cache directory"
    assert cache.stat().st_mode & 0o777 == 0o700
    assert (cache_home / "elspeth").stat().st_mode & 0o777 == 0o700
    built = fonts[0].stat()

    run_report(report_suite(tmp_path / "second"), env)
    again = fonts[0].stat()
    assert (again.st_ino, again.st_mtime_ns) == (built.st_ino, built.st_mtime_ns), "rebuilt"
    assert not list(private_tmp.glob("*matplotlib*")), "a per-run matplotlib directory"


def test_a_users_mplconfigdir_is_kept_and_an_unusable_cache_falls_back_to_a_private_dir(
    tmp_path: Path, private_tmp: Path
) -> None:
    script = (
        "import os\n"
        "from elspeth.reports._charts import _matplotlib\n"
        "matplotlib = _matplotlib()\n"
        "print(os.environ['MPLCONFIGDIR'])\n"
        "print(matplotlib.get_cachedir())\n"
    )

    def configured(**variables: str) -> tuple[Path, Path]:
        env = {**environment(private_tmp, tmp_path / "cache"), **variables}
        completed = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        chosen, used = completed.stdout.split()
        return Path(chosen), Path(used)

    chosen_by_user = tmp_path / "users-choice"
    assert configured(MPLCONFIGDIR=str(chosen_by_user)) == (chosen_by_user, chosen_by_user)
    assert not (tmp_path / "cache").exists()

    wide = tmp_path / "wide-cache" / "elspeth" / "matplotlib"
    wide.mkdir(parents=True, mode=0o755)
    wide.chmod(0o755)
    assert configured(XDG_CACHE_HOME=str(tmp_path / "wide-cache")) == (wide, wide)
    assert wide.stat().st_mode & 0o777 == 0o700, "a per-user cache others can read was kept"

    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    chosen, used = configured(XDG_CACHE_HOME=str(not_a_directory))
    assert chosen == used
    assert chosen.parent == private_tmp
    assert chosen.name.startswith("elspeth-matplotlib-")
    assert not chosen.exists(), "the private fallback outlived its process"
