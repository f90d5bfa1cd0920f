"""The worker sandbox, each lock tried for real in a fresh subprocess (it is irreversible).

The probe (``sandbox_probes/probe.py``) applies the sandbox, tries forbidden things and prints
JSON; the tests assert on it. A control probe without any sandbox shows each forbidden thing
really works unsandboxed here, so a refusal is the sandbox's doing. Each lock is also tried alone
with the others opened on purpose.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from elspeth.orchestrator.worker_process._sandbox import (
    ALLOWED_ENVIRONMENT,
    REFUSALS,
    SINGLE_THREAD_ENVIRONMENT,
    LandlockStatus,
    SandboxError,
    SandboxLimits,
    SandboxPolicy,
    SeccompStatus,
    check_environment,
    enforce_full_sandbox,
    kernel_abi,
    missing_locks,
    worker_environment,
)
from elspeth.orchestrator.worker_process._sandbox._limits import CPU_GRACE_SECONDS
from elspeth.orchestrator.worker_process._sandbox._seccomp import load_library

PROBE = Path(__file__).parent / "sandbox_probes" / "probe.py"
LANDLOCK_ABI, LANDLOCK_REASON = kernel_abi()
SECCOMP_LIBRARY, SECCOMP_REASON = load_library()

needs_landlock = pytest.mark.skipif(LANDLOCK_ABI is None, reason=LANDLOCK_REASON)
needs_seccomp = pytest.mark.skipif(SECCOMP_LIBRARY is None, reason=SECCOMP_REASON)

LIMITS = {
    "nproc": 512,
    "address_space_bytes": 4 << 30,
    "cpu_seconds": 30,
    "open_files": 64,
    "file_size_bytes": 16 << 20,
}
EXPECTED_RLIMITS = {
    "RLIMIT_NPROC": 512,
    "RLIMIT_AS": 4 << 30,
    "RLIMIT_CPU": 30,
    "RLIMIT_NOFILE": 64,
    "RLIMIT_FSIZE": 16 << 20,
}


def run_probe(
    config: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(PROBE), json.dumps(config)],
        env=env if env is not None else worker_environment(config.get("scratch_dir", "/")),
        pass_fds=pass_fds,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    outcome: dict[str, Any] = json.loads(completed.stdout)
    outcome["stderr"] = completed.stderr
    return outcome


def results_by_name(outcome: dict[str, Any], actions: Sequence[Sequence[object]]) -> dict[str, Any]:
    assert outcome["setup"]["ok"], outcome["setup"]
    return {
        "/".join(map(str, action)): result
        for action, result in zip(actions, outcome["results"], strict=True)
    }


REFUSED = {"errno": "EPERM"}


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A scratch directory and an outside directory with a file no sandbox allows."""
    scratch = tmp_path_factory.mktemp("scratch")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "private.txt").write_text("not for plugins")
    return {
        "scratch": str(scratch),
        "outside_file": str(outside / "private.txt"),
    }


@pytest.fixture(scope="module")
def tcp_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.listen(8)
        yield int(server.getsockname()[1])


@pytest.fixture(scope="module")
def abstract_name() -> Iterator[str]:
    name = f"elspeth-sandbox-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind("\0" + name)
        server.listen(8)
        yield name


SECCOMP_ACTIONS: list[list[object]] = [
    ["socket", "AF_INET"],
    ["socket", "AF_INET6"],
    ["socket", "AF_UNIX"],
    ["socket", "AF_NETLINK", "SOCK_RAW"],
    ["socket", "AF_INET", "SOCK_DGRAM"],
    ["socketpair"],
    ["io_uring_setup"],
    ["unshare_user"],
    ["clone_newuser"],
    ["clone_newnet"],
    ["clone3"],
    ["ptrace_child"],
    ["process_vm_readv_child"],
    ["fork_setsid"],
    ["fork_setpgid"],
    ["set_dumpable"],
    ["set_dumpable_high_bits"],
    ["dumpable"],
    ["no_new_privs"],
    ["fork"],
    ["thread_after"],
    ["multiprocessing_process"],
    ["subprocess"],
    ["i386_socket"],
    ["setpgid"],
    ["setsid"],
]
LANDLOCK_ACTIONS_TEMPLATE: list[list[object]] = [
    ["read", "{allowed}"],
    ["read", "{outside_file}"],
    ["write", "{outside_new}"],
    ["write", "{inside_new}"],
    ["tcp_connect", "{port}"],
    ["tcp_bind"],
    ["abstract_connect", "{abstract}"],
    ["signal_parent"],
    ["signal_child"],
    ["fork"],
]


def landlock_actions_for(
    places: dict[str, str], port: int, abstract: str, tag: str
) -> list[list[object]]:
    """The Landlock actions; ``tag`` names the files written, so runs never see each other's."""
    values = {
        **places,
        "allowed": os.__file__,
        "port": port,
        "abstract": abstract,
        "outside_new": os.path.join(os.path.dirname(places["outside_file"]), f"{tag}.txt"),
        "inside_new": os.path.join(places["scratch"], f"{tag}.txt"),
    }
    return [
        [name, *(value if not isinstance(value, str) else _fill(value, values) for value in args)]
        for name, *args in LANDLOCK_ACTIONS_TEMPLATE
    ]


def _fill(template: str, values: dict[str, object]) -> object:
    if template.startswith("{") and template.endswith("}"):
        return values[template[1:-1]]
    return template


@pytest.fixture(scope="module")
def unsandboxed(
    places: dict[str, str], tcp_port: int, abstract_name: str
) -> dict[str, dict[str, Any]]:
    """The control: the same probe without any sandbox."""
    landlock_actions = landlock_actions_for(places, tcp_port, abstract_name, "control")
    seccomp = run_probe(
        {"setup": "none", "scratch_dir": places["scratch"], "actions": SECCOMP_ACTIONS}
    )
    landlock = run_probe(
        {"setup": "none", "scratch_dir": places["scratch"], "actions": landlock_actions}
    )
    return {
        "seccomp": results_by_name(seccomp, SECCOMP_ACTIONS),
        "landlock": results_by_name(landlock, landlock_actions),
    }


@pytest.fixture(scope="module")
def seccomp_alone(places: dict[str, str]) -> dict[str, Any]:
    outcome = run_probe(
        {"setup": "seccomp", "scratch_dir": places["scratch"], "actions": SECCOMP_ACTIONS}
    )
    assert outcome["setup"]["report"]["applied"], outcome["setup"]
    return results_by_name(outcome, SECCOMP_ACTIONS)


@pytest.fixture(scope="module")
def landlock_alone(places: dict[str, str], tcp_port: int, abstract_name: str) -> dict[str, Any]:
    landlock_actions = landlock_actions_for(places, tcp_port, abstract_name, "landlock")
    outcome = run_probe(
        {"setup": "landlock", "scratch_dir": places["scratch"], "actions": landlock_actions}
    )
    assert outcome["setup"]["report"]["applied"], outcome["setup"]
    return results_by_name(outcome, landlock_actions)


def test_importing_the_sandbox_loads_only_the_standard_library() -> None:
    script = (
        "import sys; before = set(sys.modules)\n"
        "import elspeth.orchestrator.worker_process._sandbox\n"
        "import json; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True
    )
    loaded = json.loads(completed.stdout)
    assert "elspeth.orchestrator.worker_process._sandbox._seccomp" in loaded
    own = {
        "elspeth",
        "elspeth.errors",
        "elspeth.orchestrator",
        "elspeth.orchestrator.worker_process",
    }
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names
        and name not in own
        and not name.startswith("elspeth.orchestrator.worker_process._sandbox")
    ]
    assert foreign == []
    assert not {"numpy", "pandas", "pyarrow"} & set(loaded)


# --- the control run: every forbidden thing works without the sandbox -----------------------


def test_control_probe_shows_the_forbidden_things_work_unsandboxed(
    unsandboxed: dict[str, dict[str, Any]],
) -> None:
    seccomp, landlock = unsandboxed["seccomp"], unsandboxed["landlock"]
    for name in ("socket/AF_INET", "socket/AF_UNIX", "socket/AF_NETLINK/SOCK_RAW", "setpgid"):
        assert seccomp[name]["ok"], (name, seccomp[name])
    assert seccomp["ptrace_child"]["ok"]
    assert seccomp["process_vm_readv_child"] == {"ok": True, "value": "secret!"}
    assert seccomp["fork_setsid"]["value"]["ok"]
    assert seccomp["set_dumpable"]["ok"]
    assert seccomp["no_new_privs"] == {"ok": True, "value": 0}
    assert all(result["ok"] for result in landlock.values()), landlock


# --- seccomp alone (no Landlock, no dumpable change) ------------------------------------------


@needs_seccomp
@pytest.mark.parametrize(
    "action",
    [
        "socket/AF_INET",
        "socket/AF_INET6",
        "socket/AF_UNIX",
        "socket/AF_NETLINK/SOCK_RAW",
        "socket/AF_INET/SOCK_DGRAM",
        "io_uring_setup",
        "unshare_user",
        "clone_newuser",
        "clone_newnet",
        "ptrace_child",
        "process_vm_readv_child",
        "setsid",
        "setpgid",
        "set_dumpable",
        "set_dumpable_high_bits",
    ],
)
def test_seccomp_refuses_with_eperm(seccomp_alone: dict[str, Any], action: str) -> None:
    assert seccomp_alone[action] == REFUSED


@needs_seccomp
def test_seccomp_keeps_socketpair_fork_threads_and_subprocesses(
    seccomp_alone: dict[str, Any],
) -> None:
    assert seccomp_alone["socketpair"] == {"ok": True, "value": "x"}
    assert seccomp_alone["fork"] == {"ok": True, "value": {"ok": True, "value": "child ran"}}
    assert seccomp_alone["thread_after"] == {"ok": True, "value": "thread ran"}
    assert seccomp_alone["multiprocessing_process"] == {
        "ok": True,
        "value": {"answer": 42, "exitcode": 0},
    }
    assert seccomp_alone["subprocess"] == {"ok": True, "value": 0}


@needs_seccomp
def test_seccomp_answers_clone3_with_enosys_so_libc_falls_back(
    seccomp_alone: dict[str, Any],
) -> None:
    assert seccomp_alone["clone3"] == {"errno": "ENOSYS"}


@needs_seccomp
def test_forked_children_cannot_leave_the_process_group(seccomp_alone: dict[str, Any]) -> None:
    assert seccomp_alone["fork_setsid"] == {"ok": True, "value": REFUSED}
    assert seccomp_alone["fork_setpgid"] == {"ok": True, "value": REFUSED}


@needs_seccomp
def test_dumpability_cannot_be_turned_back_on(seccomp_alone: dict[str, Any]) -> None:
    # Seccomp alone leaves the process dumpable; the point is that the call is refused,
    # including with garbage in the upper half of the int ``option``.
    assert seccomp_alone["set_dumpable"] == REFUSED
    assert seccomp_alone["set_dumpable_high_bits"] == REFUSED
    assert seccomp_alone["no_new_privs"] == {"ok": True, "value": 1}


@needs_seccomp
@pytest.mark.skipif(platform.machine() != "x86_64", reason="int 0x80 exists only on x86")
def test_32_bit_syscall_entry_kills_the_process(
    seccomp_alone: dict[str, Any], unsandboxed: dict[str, dict[str, Any]]
) -> None:
    control = unsandboxed["seccomp"]["i386_socket"]
    if control.get("value", {}).get("value", -1) < 0:
        pytest.skip(f"this kernel has no 32-bit syscall entry: {control}")
    assert seccomp_alone["i386_socket"] == {"ok": True, "value": {"signal": "SIGSYS"}}


# --- Landlock alone (no seccomp) ---------------------------------------------------------------


@needs_landlock
def test_landlock_reads_allowed_paths_only(
    landlock_alone: dict[str, Any], places: dict[str, str]
) -> None:
    assert landlock_alone[f"read/{os.__file__}"] == {"ok": True, "value": 16}
    assert landlock_alone[f"read/{places['outside_file']}"] == {"errno": "EACCES"}


@needs_landlock
def test_landlock_writes_only_in_the_scratch_directory(
    landlock_alone: dict[str, Any], places: dict[str, str]
) -> None:
    outside_new = Path(places["outside_file"]).with_name("landlock.txt")
    inside_new = Path(places["scratch"]) / "landlock.txt"
    assert landlock_alone[f"write/{outside_new}"] == {"errno": "EACCES"}
    assert not outside_new.exists()
    assert landlock_alone[f"write/{inside_new}"] == {"ok": True, "value": 7}
    assert inside_new.read_text() == "written"


@needs_landlock
@pytest.mark.skipif((LANDLOCK_ABI or 0) < 4, reason=f"Landlock ABI {LANDLOCK_ABI} has no TCP rules")
def test_landlock_denies_tcp_connect_and_bind(
    landlock_alone: dict[str, Any], tcp_port: int
) -> None:
    assert landlock_alone[f"tcp_connect/{tcp_port}"] == {"errno": "EACCES"}
    assert landlock_alone["tcp_bind"] == {"errno": "EACCES"}


@needs_landlock
@pytest.mark.skipif((LANDLOCK_ABI or 0) < 6, reason=f"Landlock ABI {LANDLOCK_ABI} has no scopes")
def test_landlock_scopes_abstract_sockets_and_signals(
    landlock_alone: dict[str, Any], abstract_name: str
) -> None:
    assert landlock_alone[f"abstract_connect/{abstract_name}"] == REFUSED
    assert landlock_alone["signal_parent"] == REFUSED
    assert landlock_alone["signal_child"]["ok"]
    assert landlock_alone["fork"] == {"ok": True, "value": {"ok": True, "value": "child ran"}}


HARDENED_FILE = "hardened.txt"


# --- the whole sequence -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hardened(places: dict[str, str]) -> dict[str, Any]:
    actions: list[list[object]] = [
        ["list_fds"],
        ["rlimits"],
        ["dumpable"],
        ["no_new_privs"],
        ["set_dumpable"],
        ["dumpable"],
        ["socket", "AF_INET"],
        ["socket", "AF_UNIX"],
        ["socketpair"],
        ["read", places["outside_file"]],
        ["write", os.path.join(places["scratch"], HARDENED_FILE)],
        ["fork_setsid"],
        ["multiprocessing_process"],
        ["import_heavy"],
    ]
    read_end, write_end = os.pipe()
    try:
        outcome = run_probe(
            {
                "setup": "harden",
                "scratch_dir": places["scratch"],
                "policy": {"limits": LIMITS, "require_full": True},
                "actions": actions,
            },
            pass_fds=(write_end,),
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    return {
        "inherited": write_end,
        "report": outcome["setup"].get("report"),
        "setup": outcome["setup"],
        "results": results_by_name(outcome, actions),
    }


@needs_landlock
@needs_seccomp
def test_harden_worker_reports_every_lock(hardened: dict[str, Any]) -> None:
    report = hardened["report"]
    assert report["full"] is True
    assert report["landlock"]["abi"] == min(LANDLOCK_ABI or 0, 7)
    assert report["seccomp"]["applied"] is True
    assert "socket" in report["seccomp"]["refused"]
    assert report["dumpable"] is False
    assert report["no_new_privs"] is True
    assert set(report["environment_names"]) <= set(ALLOWED_ENVIRONMENT)


@needs_landlock
@needs_seccomp
def test_harden_worker_closes_inherited_descriptors(hardened: dict[str, Any]) -> None:
    assert hardened["inherited"] in hardened["report"]["closed_descriptors"]
    assert hardened["results"]["list_fds"] == {"ok": True, "value": [0, 1, 2]}


@needs_landlock
@needs_seccomp
def test_harden_worker_lowers_hard_limits(hardened: dict[str, Any]) -> None:
    limits = hardened["results"]["rlimits"]["value"]
    # RLIMIT_CPU's hard limit is a little above its soft one, so SIGXCPU comes before SIGKILL.
    grace = {"RLIMIT_CPU": CPU_GRACE_SECONDS}
    assert limits == {
        name: [value, value + grace.get(name, 0)] for name, value in EXPECTED_RLIMITS.items()
    }


@needs_landlock
@needs_seccomp
def test_hardened_worker_stays_not_dumpable(hardened: dict[str, Any]) -> None:
    results = hardened["results"]
    assert results["no_new_privs"] == {"ok": True, "value": 1}
    assert results["set_dumpable"] == REFUSED
    assert results["dumpable"] == {"ok": True, "value": 0}


@needs_landlock
@needs_seccomp
def test_hardened_worker_cannot_reach_out(hardened: dict[str, Any], places: dict[str, str]) -> None:
    results = hardened["results"]
    assert results["socket/AF_INET"] == REFUSED
    assert results["socket/AF_UNIX"] == REFUSED
    assert results[f"read/{places['outside_file']}"] == {"errno": "EACCES"}
    assert results["fork_setsid"] == {"ok": True, "value": REFUSED}


@needs_landlock
@needs_seccomp
def test_hardened_worker_still_runs_plugin_code(
    hardened: dict[str, Any], places: dict[str, str]
) -> None:
    results = hardened["results"]
    assert results["socketpair"] == {"ok": True, "value": "x"}
    written = os.path.join(places["scratch"], HARDENED_FILE)
    assert results[f"write/{written}"] == {"ok": True, "value": 7}
    assert results["multiprocessing_process"]["value"] == {"answer": 42, "exitcode": 0}
    heavy = results["import_heavy"]["value"]
    assert heavy["rows"] == 3


# --- refusals before anything is applied ----------------------------------------------------


def test_worker_refuses_an_environment_variable_outside_the_list(
    places: dict[str, str],
) -> None:
    secret = secrets.token_hex(16)
    env = {**worker_environment(places["scratch"]), "ELSPETH_SIDECAR_SESSION_KEY": secret}
    outcome = run_probe(
        {
            "setup": "harden",
            "scratch_dir": places["scratch"],
            "policy": {"limits": LIMITS, "require_full": False},
        },
        env=env,
    )
    assert outcome["setup"]["ok"] is False
    assert "ELSPETH_SIDECAR_SESSION_KEY" in outcome["setup"]["message"]
    assert secret not in json.dumps(outcome)


def test_worker_refuses_to_harden_with_a_second_thread(places: dict[str, str]) -> None:
    outcome = run_probe(
        {
            "setup": "harden",
            "scratch_dir": places["scratch"],
            "before": ["start_thread"],
            "policy": {"limits": LIMITS, "require_full": False},
        }
    )
    assert outcome["setup"]["ok"] is False
    assert "2 threads" in outcome["setup"]["message"]


@needs_seccomp
def test_require_full_stops_a_worker_without_landlock(places: dict[str, str]) -> None:
    def config(require_full: bool) -> dict[str, Any]:
        return {
            "setup": "harden",
            "scratch_dir": places["scratch"],
            "policy": {"limits": LIMITS, "require_full": require_full, "landlock": False},
        }

    refused = run_probe(config(require_full=True))
    assert refused["setup"]["ok"] is False
    assert "Landlock: disabled by the sandbox policy" in refused["setup"]["message"]
    allowed = run_probe(config(require_full=False))
    assert allowed["setup"]["ok"] is True
    assert allowed["setup"]["report"]["landlock"]["applied"] is False
    assert allowed["setup"]["report"]["full"] is False


# --- pure functions (no process state touched) ----------------------------------------------

APPLIED_LANDLOCK = LandlockStatus(applied=True, reason="ok", abi=7, kernel_abi=7)
MISSING_LANDLOCK = LandlockStatus(applied=False, reason="the kernel has no Landlock (ENOSYS)")
APPLIED_SECCOMP = SeccompStatus(applied=True, reason="ok", libseccomp_version="2.5.4")
MISSING_SECCOMP = SeccompStatus(applied=False, reason="libseccomp.so.2 cannot be loaded")


@pytest.mark.parametrize(
    ("landlock", "seccomp", "require_full", "refused"),
    [
        (APPLIED_LANDLOCK, APPLIED_SECCOMP, True, False),
        (MISSING_LANDLOCK, APPLIED_SECCOMP, True, True),
        (APPLIED_LANDLOCK, MISSING_SECCOMP, True, True),
        (MISSING_LANDLOCK, MISSING_SECCOMP, True, True),
        (MISSING_LANDLOCK, MISSING_SECCOMP, False, False),
        (MISSING_LANDLOCK, APPLIED_SECCOMP, False, False),
    ],
)
def test_full_sandbox_decision_table(
    landlock: LandlockStatus, seccomp: SeccompStatus, require_full: bool, refused: bool
) -> None:
    if refused:
        with pytest.raises(SandboxError) as raised:
            enforce_full_sandbox(landlock, seccomp, require_full=require_full)
        for reason in missing_locks(landlock, seccomp):
            assert reason in str(raised.value)
    else:
        enforce_full_sandbox(landlock, seccomp, require_full=require_full)


def test_worker_environment_is_allow_listed_and_pins_threads(tmp_path: Path) -> None:
    env = worker_environment(str(tmp_path))
    assert env["LANG"] == env["LC_ALL"] == "C.UTF-8"
    assert env["TMPDIR"] == str(tmp_path)
    assert all(env[name] == "1" for name in SINGLE_THREAD_ENVIRONMENT)
    assert check_environment(env) == tuple(sorted(env))
    with pytest.raises(SandboxError, match="absolute"):
        worker_environment("relative/scratch")


def test_check_environment_names_every_stray_variable_without_values() -> None:
    with pytest.raises(SandboxError) as raised:
        check_environment({"PATH": "/usr/bin", "AWS_SECRET_ACCESS_KEY": "hunter2", "ZZ": "v4lue"})
    message = str(raised.value)
    assert "AWS_SECRET_ACCESS_KEY" in message
    assert "ZZ" in message
    assert "hunter2" not in message
    assert "v4lue" not in message


@pytest.mark.parametrize("bad", [-1, True, 1.5, "10"])
def test_limits_reject_bad_values(bad: object) -> None:
    with pytest.raises(SandboxError, match="cpu_seconds"):
        SandboxLimits(**{**LIMITS, "cpu_seconds": bad})  # type: ignore[arg-type]


def test_policy_rejects_a_missing_scratch_directory(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="scratch"):
        SandboxPolicy(
            scratch_dir=str(tmp_path / "absent"),
            limits=SandboxLimits(**LIMITS),
            require_full=True,
        )


def test_seccomp_policy_covers_the_required_calls() -> None:
    refused = {refusal.syscall for refusal in REFUSALS}
    required = {
        "socket",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "unshare",
        "setns",
        "clone",
        "clone3",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "setsid",
        "setpgid",
        "prctl",
    }
    assert required <= refused
    assert "socketpair" not in refused
