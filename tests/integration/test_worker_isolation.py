"""Plugin workers isolated for real: ``appplugin`` workers of an ``appuser`` orchestrator.

The orchestrator is a driver script running as ``appuser`` (never root) with a
:class:`PluginRuntime` in sudo mode against the real daemon; workers start through the sudoers
rule as ``appplugin`` and run probe plugins that try what a hostile plugin would and report each
outcome as data. Runs as root (provisioning users, venv and sudoers) or as ``appuser`` inside the
dev image (using the image's own); with ``ELSPETH_REQUIRE_ISOLATION_TESTS=1`` a skip here fails.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from elspeth.orchestrator.worker_process._sandbox import ALLOWED_ENVIRONMENT
from tests.integration import _sudo
from tests.integration._daemon import DaemonHandle
from tests.integration._processes import (
    BASE_ENVIRONMENT,
    JsonLines,
    live_processes_of,
    run_as,
    stop_process,
    wait_for,
)
from tests.integration._provision import REPO_ROOT
from tests.integration._tier import Tier
from tests.integration.conftest import REQUIRE_ISOLATION, isolation_required

pytestmark = [pytest.mark.root, pytest.mark.integration]

DRIVER_TIMEOUT = 120.0
REAPED_TIMEOUT = 15.0


def orchestrator_secrets() -> dict[str, str]:
    """What a real orchestrator's environment may hold; none of it may reach a worker."""
    return {
        "ELSPETH_SIDECAR_SESSION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "AWS_ACCESS_KEY_ID": f"AKIA{secrets.token_hex(8).upper()}",
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "OPENAI_API_KEY": f"sk-{secrets.token_urlsafe(24)}",
        "AZURE_OPENAI_API_KEY": secrets.token_hex(16),
    }


@dataclass
class DriverRun:
    result: dict[str, Any]
    #: pid -> the worker's original environment block as root read it from outside; None where
    #: nobody may (the image, or root without CAP_SYS_PTRACE: see ``Tier.reads_worker_environ``).
    environ_blocks: dict[int, bytes] | None
    secrets: dict[str, str]
    driver_output: str


def run_driver(tier: Tier, daemon: DaemonHandle, scenario: str, **settings: Any) -> DriverRun:
    """Run the orchestrator driver as ``appuser``; while it pauses with live workers, read their
    environment blocks from outside where this process may (root with CAP_SYS_PTRACE only)."""
    leaked = orchestrator_secrets()
    config = {
        "scenario": scenario,
        "socket_path": str(daemon.socket_path),
        "session_key_path": str(daemon.session_key_path),
        "run_dir": str(tier.appuser_dir / f"run-{scenario}-{secrets.token_hex(4)}"),
        "scratch_root": str(tier.scratch_root),
        "plugin_dir": str(tier.plugin_dir),
        "sudo": "/usr/bin/sudo",
        "worker_user": "appplugin",
        "call_timeout": 60.0,
        **settings,
    }
    stderr_path = tier.home / f"driver-{scenario}-{secrets.token_hex(4)}.stderr"
    with open(stderr_path, "wb") as stderr:
        driver = subprocess.Popen(
            [
                str(tier.python),
                "-I",
                str(tier.script("orchestrator_driver.py")),
                json.dumps(config),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd="/",
            env={**BASE_ENVIRONMENT, **leaked},
            close_fds=True,
            **tier.users["appuser"].process_options(),
        )
    assert driver.stdin is not None
    messages = JsonLines(driver)
    blocks: dict[int, bytes] | None = None
    try:
        message = messages.next(DRIVER_TIMEOUT)
        if message["event"] == "paused":
            if tier.reads_worker_environ:
                blocks = {
                    pid: Path(f"/proc/{pid}/environ").read_bytes() for pid in message["worker_pids"]
                }
            driver.stdin.write(b"continue\n")
            driver.stdin.flush()
            message = messages.next(DRIVER_TIMEOUT)
        status = driver.wait(DRIVER_TIMEOUT)
    except AssertionError as error:
        stop_process(driver)
        raise AssertionError(
            f"{error}; driver stderr:\n{stderr_path.read_text()[-4000:]}"
        ) from None
    except BaseException:
        stop_process(driver)
        raise
    finally:
        messages.close()
        driver.stdin.close()
        assert driver.stdout is not None
        driver.stdout.close()
    output = stderr_path.read_text("utf-8", "replace")
    assert message["event"] == "result", output[-4000:]
    assert status == 0, output[-4000:]
    return DriverRun(message, blocks, leaked, output)


@pytest.fixture(scope="module")
def isolation(tier: Tier, sidecar_daemon: DaemonHandle) -> DriverRun:
    sentinel = f"PLUGIN-STDERR-SENTINEL-{secrets.token_hex(8)}"
    write_targets = [
        str(tier.scratch_root),
        "/tmp",
        "/var/tmp",
        str(tier.plugin_dir),
        str(tier.home),
    ]
    if os.path.isdir("/dev/shm"):
        write_targets.append("/dev/shm")
    return run_driver(
        tier,
        sidecar_daemon,
        "isolation",
        stderr_sentinel=sentinel,
        write_targets=write_targets,
    )


def facts_of(run: DriverRun) -> dict[str, Any]:
    facts: dict[str, Any] = run.result["facts"]
    return facts


def environment_names(block: bytes) -> set[str]:
    return {entry.split(b"=", 1)[0].decode() for entry in block.split(b"\0") if entry}


# --- who the worker is --------------------------------------------------------------------


def test_workers_run_as_appplugin(tier: Tier, isolation: DriverRun) -> None:
    appplugin, sidecar = tier.users["appplugin"], tier.users["sidecar"]
    identity = facts_of(isolation)["identity"]
    assert (identity["uid"], identity["euid"], identity["gid"]) == (
        appplugin.uid,
        appplugin.uid,
        appplugin.gid,
    )
    assert set(identity["groups"]) <= set(appplugin.groups)
    assert sidecar.gid not in identity["groups"]
    assert isolation.result["other_worker"]["uid"] == appplugin.uid
    assert identity["pid"] != isolation.result["other_worker"]["pid"]
    assert isolation.result["produced_level"] == "OFFICIAL"
    assert all(worker["sandbox"]["full"] for worker in isolation.result["workers"])


def test_worker_never_imports_sidecar_code(isolation: DriverRun) -> None:
    assert facts_of(isolation)["sidecar_modules"] == []


def test_worker_holds_only_descriptors_0_1_2(isolation: DriverRun) -> None:
    descriptors = facts_of(isolation)["descriptors"]
    assert list(descriptors) == ["0", "1", "2"], descriptors


def own_environ_blocks(run: DriverRun) -> dict[int, bytes]:
    """pid -> the environment block each worker read from its own memory at run time."""
    reports = {
        run.result["facts"]["identity"]["pid"]: run.result["facts"]["environ_block"],
        run.result["other_worker"]["pid"]: run.result["other_worker"]["environ_block"],
    }
    assert all("ok" in outcome for outcome in reports.values()), reports
    return {pid: base64.b64decode(outcome["ok"]) for pid, outcome in reports.items()}


def test_worker_environment_holds_only_allow_listed_names(tier: Tier, isolation: DriverRun) -> None:
    """Even with the session key, cloud credentials and API keys in the orchestrator's
    environment. Each worker reports the environment block it was started with, read from its
    own memory (a non-dumpable ``appplugin`` process cannot open its own
    ``/proc/self/environ``, and no other user may); where this process can also read the live
    workers' ``/proc/<pid>/environ`` from outside (root with CAP_SYS_PTRACE, which a
    container's default capabilities drop), that must be the same bytes."""
    facts = facts_of(isolation)
    values = list(isolation.secrets.values())
    assert facts["own_environ_block"] == {"errno": "EACCES"}
    blocks = own_environ_blocks(isolation)
    assert len(blocks) == 2
    for block in blocks.values():
        names = environment_names(block)
        assert "PATH" in names
        assert names <= set(ALLOWED_ENVIRONMENT), names - set(ALLOWED_ENVIRONMENT)
        assert not [value for value in values if value.encode() in block]
        assert b"USER=appplugin\0" in block
    if isolation.environ_blocks is not None:
        assert isolation.environ_blocks == blocks
    for worker in isolation.result["workers"]:
        assert set(worker["sandbox"]["environment_names"]) <= set(ALLOWED_ENVIRONMENT)
    assert set(facts["environment"]) <= set(ALLOWED_ENVIRONMENT)
    assert not [value for value in values if value in json.dumps(facts["environment"])]


# --- what it cannot reach -----------------------------------------------------------------


def test_worker_cannot_read_the_session_key(isolation: DriverRun) -> None:
    assert facts_of(isolation)["read_session_key"] == {"errno": "EACCES"}


def test_worker_cannot_connect_to_the_daemon(isolation: DriverRun) -> None:
    assert facts_of(isolation)["connect_daemon"] == {"errno": "EPERM"}


def test_worker_cannot_open_a_socket_of_any_family(isolation: DriverRun) -> None:
    facts = facts_of(isolation)
    outcomes = {**facts["sockets"], "udp": facts["udp_socket"]}
    assert len(outcomes) == 47
    assert {family: o for family, o in outcomes.items() if o != {"errno": "EPERM"}} == {}
    assert facts["socketpair"] == {"ok": 2}  # pairs stay: they reach nothing outside


def test_worker_cannot_read_the_orchestrator_or_another_worker(isolation: DriverRun) -> None:
    other = facts_of(isolation)["other_processes"]
    assert set(other) == {"orchestrator", "other_worker"}
    for target, attempts in other.items():
        assert attempts == {"environ": {"errno": "EACCES"}, "mem": {"errno": "EACCES"}}, target


def test_worker_cannot_write_outside_its_scratch_directory(isolation: DriverRun) -> None:
    facts = facts_of(isolation)
    writes = dict(facts["writes"])
    assert "ok" in writes.pop(facts["scratch"])
    assert len(writes) >= 5
    assert {path: o for path, o in writes.items() if o != {"errno": "EACCES"}} == {}


def test_worker_cannot_read_the_runs_outputs(isolation: DriverRun) -> None:
    reads = facts_of(isolation)["private_reads"]
    assert set(isolation.result["private_files"].values()) <= set(reads)
    assert {path: o for path, o in reads.items() if o != {"errno": "EACCES"}} == {}


def test_worker_cannot_leave_its_process_group(isolation: DriverRun) -> None:
    facts = facts_of(isolation)
    assert facts["setsid"] == {"errno": "EPERM"}
    assert facts["setpgid"] == {"errno": "EPERM"}
    before, after = facts["identity"], facts["identity_after"]
    # sudo leads the session and group the orchestrator started; the worker is its child.
    assert before["pgrp"] == before["sid"] == before["ppid"]
    assert (after["pgrp"], after["sid"]) == (before["pgrp"], before["sid"])
    assert before["pgrp"] in {worker["pgid"] for worker in isolation.result["workers"]}


# --- what leaves it -----------------------------------------------------------------------


def test_worker_stderr_lands_in_the_private_run_file_not_the_operational_log(
    tier: Tier, isolation: DriverRun
) -> None:
    sentinel = "PLUGIN-STDERR-SENTINEL-"
    files = isolation.result["stderr_files"]
    holding = [f for f in files.values() if sentinel in f["text"]]
    assert len(holding) == 1
    (captured,) = holding
    assert captured["text"].count(sentinel) == 2  # print() and a raw write to descriptor 2
    assert "classification: OFFICIAL" in captured["text"].splitlines()[0]
    assert captured["mode"] == 0o600
    assert captured["uid"] == tier.users["appuser"].uid
    log = isolation.result["operational_log"]
    assert captured["path"] in log  # the log says where, and how much, but not what
    assert sentinel not in log
    assert sentinel not in isolation.driver_output


def test_polite_shutdown_leaves_no_worker_and_no_scratch_directory(
    tier: Tier, isolation: DriverRun
) -> None:
    workers = isolation.result["workers"]
    assert [worker["returncode"] for worker in workers] == [0, 0]
    assert "could not be killed" not in isolation.result["operational_log"]
    if tier.is_root:
        assert not [w["scratch_dir"] for w in workers if os.path.lexists(w["scratch_dir"])]
    wait_for(
        lambda: not live_processes_of(tier.users["appplugin"]),
        REAPED_TIMEOUT,
        "no live appplugin process",
    )


# --- killing and sudo ---------------------------------------------------------------------


def test_runaway_worker_is_killed_through_the_reaper(
    tier: Tier, sidecar_daemon: DaemonHandle
) -> None:
    """The plugin ignores SIGTERM and double-forks a grandchild (after ``setsid`` was refused)
    that ignores it too. The orchestrator cannot signal ``appplugin`` processes itself, so only
    the reaper, through its sudo rule, can empty the group: every pid is dead when the call's
    timeout error is raised, and no live ``appplugin`` process is left afterwards."""
    run = run_driver(tier, sidecar_daemon, "runaway", call_timeout=3.0)
    result = run.result
    assert result["failure"]["type"] == "PluginTimeoutError"
    assert "'runaway'" in result["failure"]["message"]
    assert "'runaway-chunk'" in result["failure"]["message"]
    assert result["elapsed"] < 3.0 + 15.0
    pids = result["pids"]
    assert set(pids) == {"worker", "child", "grandchild", "setsid"}
    assert pids["setsid"] == {"errno": "EPERM"}
    assert set(result["states_after_timeout"].values()) <= {"gone", "zombie"}
    assert result["signal_live_worker"] == {"errno": "EPERM"}  # kill(worker, 0) from appuser
    assert "could not be killed" not in result["operational_log"]
    wait_for(
        lambda: not live_processes_of(tier.users["appplugin"]),
        REAPED_TIMEOUT,
        "no live appplugin process",
    )


def test_sudo_lets_appuser_run_only_the_worker_and_the_reaper(tier: Tier) -> None:
    entries = _sudo.allowed_commands(tier.sudo_listing)
    assert entries, tier.sudo_listing
    assert {entry.runas for entry in entries} == {"appplugin"}
    assert all("NOPASSWD" in entry.tags for entry in entries)
    python = str(tier.python)
    assert {entry.command for entry in entries} == _sudo.expected_commands(python)
    appuser = tier.users["appuser"]
    worker = [python, "-I", "-m", _sudo.WORKER_MODULE]
    allowed = run_as(appuser, ["sudo", "-n", "-l", "-u", "appplugin", *worker])
    assert allowed.returncode == 0, allowed.stderr
    # The seed's manual form: sudo finds a bare "python" through secure_path, the venv first.
    manual = run_as(appuser, ["sudo", "-n", "-l", "-u", "appplugin", "python", "-m", worker[-1]])
    assert manual.stdout.strip() == f"{python} -m {_sudo.WORKER_MODULE}", manual.stderr
    for refused in (
        ["-u", "appplugin", *worker, "--extra"],
        ["-u", "appplugin", python, "-c", "pass"],
        ["-u", "appplugin", "/usr/bin/id"],
        ["-u", "sidecar", *worker],
        ["-u", "root", *worker],
        ["/usr/bin/id"],
    ):
        done = run_as(appuser, ["sudo", "-n", "-l", *refused])
        assert done.returncode != 0, refused


# --- the tier itself ------------------------------------------------------------------------


def test_the_isolation_tier_is_in_force(tier: Tier) -> None:
    """Root provisions its own tier; ``appuser`` must be in the image with its sudo rule."""
    assert tier.mode == ("root" if os.geteuid() == 0 else "image")
    assert _sudo.worker_python(_sudo.allowed_commands(tier.sudo_listing)) == str(tier.python)


def test_required_isolation_turns_skips_into_failures(tmp_path: Path) -> None:
    """The switch the image's test run sets: a skipped isolation test must fail the run."""
    (tmp_path / "conftest.py").write_text(
        "from tests.integration.conftest import pytest_runtest_makereport  # noqa: F401\n"
    )
    (tmp_path / "test_worker_isolation.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_skipped():
                pytest.skip("no isolation here")
            """
        )
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)}
    relaxed = subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=tmp_path, check=False
    )
    strict = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**environment, REQUIRE_ISOLATION: "1"},
        cwd=tmp_path,
        check=False,
    )
    assert relaxed.returncode == 0, relaxed.stdout
    assert "1 skipped" in relaxed.stdout
    assert strict.returncode == 1, strict.stdout
    assert "this isolation test skipped: no isolation here" in strict.stdout
    assert isolation_required() == (os.environ.get(REQUIRE_ISOLATION) == "1")
