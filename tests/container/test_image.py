"""The seed's commands against the real images (podman for docker), and what they promise.

Every command below is the one docker/README.md shows, with ``podman`` for ``docker``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.container._podman import (
    BUILD_TIMEOUT,
    DEV_IMAGE,
    REPO_ROOT,
    RUN_TIMEOUT,
    RUNTIME_IMAGE,
    Container,
    podman,
    wait_for,
)
from tests.integration import _sudo

# The first test's setup builds both images (minutes when the dependency layers change); each
# podman command keeps its own, shorter timeout.
pytestmark = [pytest.mark.container, pytest.mark.timeout(2 * BUILD_TIMEOUT + RUN_TIMEOUT)]

SAMPLE = "/opt/elspeth/examples/suite-sidecar.yaml"
VENV_PYTHON = "/opt/venv/bin/python"
APPUSER_UID = 1000
SIDECAR_UID = 1001

#: Run inside a container as root: every process's environment, with its parent pid.
PROCESS_ENVIRONMENTS = r"""
import json, os
found = {}
for entry in os.listdir("/proc"):
    if not entry.isdigit():
        continue
    try:
        with open(f"/proc/{entry}/environ", "rb") as handle:
            environ = handle.read()
        with open(f"/proc/{entry}/stat") as handle:
            parent = int(handle.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        continue
    found[entry] = {"parent": parent, "environ": environ.hex()}
print(json.dumps(found))
"""


def new_key() -> bytes:
    return secrets.token_bytes(32)


def environments(container: Container) -> dict[int, tuple[int, bytes]]:
    # --privileged: the daemon and workers are not dumpable, so even root needs CAP_SYS_PTRACE.
    done = podman("exec", "--privileged", container.name, "python", "-c", PROCESS_ENVIRONMENTS)
    assert done.returncode == 0, done.stderr
    return {
        int(pid): (entry["parent"], bytes.fromhex(entry["environ"]))
        for pid, entry in json.loads(done.stdout).items()
    }


def supervisord_tree(found: dict[int, tuple[int, bytes]]) -> dict[int, bytes]:
    """PID 1 (the entrypoint) and its descendants; ``exec``'d processes have parent 0."""
    tree = {1}
    grew = True
    while grew:
        grew = False
        for pid, (parent, _) in found.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: found[pid][1] for pid in tree if pid in found}


CLI = ("python", "-m", "elspeth.cli")


def preview_as_appuser(
    container: Container, settings: str, output_dir: str
) -> subprocess.CompletedProcess[str]:
    """The suite at ``settings`` on its first 5 rows, run by ``appuser`` in ``container``."""
    done = container.exec(
        *CLI, "--settings", settings, "--head", "5", "--output-dir", output_dir, user="appuser"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def assert_key_absent(environ_by_pid: dict[int, bytes], key: bytes) -> None:
    encoded = base64.b64encode(key)
    for pid, environ in environ_by_pid.items():
        assert encoded not in environ, pid
        assert key not in environ, pid


# --- the seed's "Testing UID Separation" -------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("sidecar", "uid=1001(sidecar) gid=1001(sidecar) groups=1001(sidecar)"),
        ("appuser", "uid=1000(appuser) gid=1000(appuser) groups=1000(appuser),1001(sidecar)"),
        ("appplugin", "uid=1002(appplugin) gid=1002(appplugin) groups=1002(appplugin)"),
    ],
)
def test_users_are_the_seeds(images: str, user: str, expected: str) -> None:
    done = podman("run", "--rm", RUNTIME_IMAGE, "id", user)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_run_sidecar_listing(images: str) -> None:
    done = podman("run", "--rm", RUNTIME_IMAGE, "ls", "-la", "/run/sidecar/")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[-1]: line.split() for line in done.stdout.splitlines()[1:]}
    assert lines["."][0] == "drwxr-x---"
    assert lines["."][2:4] == ["sidecar", "sidecar"]
    assert lines[".session"][0] == "-rw-r-----"
    assert lines[".session"][2:5] == ["sidecar", "sidecar", "32"]
    assert "session key: generated" in done.stderr


# --- production: a job run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def job_run(images: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The seed's production command with the sample suite, outputs and logs on volumes."""
    volumes = tmp_path_factory.mktemp("job")
    output, logs, state = volumes / "output", volumes / "supervisor", volumes / "state"
    for path in (output, logs, state):
        path.mkdir()
    os.chown(output, APPUSER_UID, APPUSER_UID)
    key = new_key()
    done = podman(
        "run",
        "--rm",
        "--name=elspeth-test-job",
        f"--env=ELSPETH_SIDECAR_SESSION_KEY={base64.b64encode(key).decode()}",
        f"--env=ORCHESTRATOR_ARGS=--settings {SAMPLE} --output-dir /workspace/output",
        f"--volume={output}:/workspace/output",
        f"--volume={logs}:/var/log/supervisor",
        f"--volume={state}:/var/lib/elspeth-sidecar",
        RUNTIME_IMAGE,
    )
    return {"done": done, "output": output, "logs": logs, "state": state}


def test_job_run_exits_zero_with_complete_outputs(job_run: dict[str, object]) -> None:
    done = job_run["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (manifest_path,) = Path(str(job_run["output"])).glob("*/manifest.json")
    run_dir = manifest_path.parent
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "complete"
    assert (run_dir / "baseline__results__results_csv.csv").stat().st_size > 0
    # The reports render in the image as appuser: matplotlib and XlsxWriter work offline there.
    reports = {a["path"]: a["classification"] for a in manifest["artifacts"]}
    for name in ("report__report_html.html", "report__report_markdown.md", "report__workbook.xlsx"):
        assert reports[name] == manifest["classification"], name
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600
    assert "<svg" in (run_dir / "report__report_html.html").read_text("utf-8")
    audit = (run_dir / "audit.jsonl").read_text().splitlines()
    assert len(audit) > 10
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in run_dir.glob("*.jsonl"))


def test_job_run_started_the_daemon_before_the_orchestrator(job_run: dict[str, object]) -> None:
    logs = Path(str(job_run["logs"]))
    supervisord = (logs / "supervisord.log").read_text()
    assert supervisord.index("spawned: 'sidecar-daemon'") < supervisord.index(
        "spawned: 'orchestrator'"
    )
    assert "exited: orchestrator (exit status 0; expected)" in supervisord
    orchestrator = (logs / "orchestrator-stderr.log").read_text()
    assert orchestrator.index("sidecar daemon ready") < orchestrator.index("python -m elspeth.cli")
    assert "connected to the sidecar daemon" in orchestrator
    assert "listening on /run/sidecar/auth.sock" in (logs / "sidecar-stderr.log").read_text()
    # The same lines reach the container's own output (docker logs).
    done = job_run["done"]
    assert "listening on /run/sidecar/auth.sock" in done.stdout
    assert "spawned: 'orchestrator'" in done.stdout


def test_checkpoint_key_is_on_the_volume_for_sidecar_only(job_run: dict[str, object]) -> None:
    state = Path(str(job_run["state"]))
    key = state / "checkpoint.key"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert state.stat().st_uid == SIDECAR_UID
    assert (key.stat().st_uid, stat.S_IMODE(key.stat().st_mode)) == (SIDECAR_UID, 0o600)
    assert key.stat().st_size == 32


# --- bad keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a key", "holds 9 bytes and is not valid base64"),
        (base64.b64encode(b"x" * 16).decode(), "decodes as base64 to 16 bytes"),
        ("", "holds 0 bytes"),
    ],
)
def test_malformed_or_wrong_length_key_stops_the_container(
    images: str, value: str, message: str
) -> None:
    done = podman(
        "run", "--rm", f"--env=ELSPETH_SIDECAR_SESSION_KEY={value}", RUNTIME_IMAGE, "true"
    )
    assert done.returncode != 0
    assert "ELSPETH_SIDECAR_SESSION_KEY must be base64" in done.stderr
    assert message in done.stderr
    if value:
        assert value not in done.stderr


def test_daemon_failing_for_good_stops_the_container(images: str, tmp_path: Path) -> None:
    # A config that loads, with a socket the daemon cannot bind: it fails at every start.
    config = tmp_path / "sidecar.toml"
    config.write_text('socket_path = "/nonexistent/auth.sock"\n')
    config.chmod(0o644)
    done = podman("run", "--rm", f"--volume={config}:/etc/elspeth/sidecar.toml:ro", RUNTIME_IMAGE)
    assert done.returncode == 1
    assert "gave up: sidecar-daemon entered FATAL state" in done.stdout
    assert "the sidecar daemon failed for good" in done.stderr


@pytest.mark.parametrize("mode", ["service", "job"])
def test_an_invalid_sidecar_config_exits_2_before_anything_starts(
    images: str, tmp_path: Path, mode: str
) -> None:
    config = tmp_path / "sidecar.toml"
    config.write_text('max_batch = "many"\n')
    config.chmod(0o644)
    job = [f"--env=ORCHESTRATOR_ARGS=--settings {SAMPLE}"] if mode == "job" else []
    done = podman(
        "run", "--rm", *job, f"--volume={config}:/etc/elspeth/sidecar.toml:ro", RUNTIME_IMAGE
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "max_batch" in done.stderr
    assert "/etc/elspeth/sidecar.toml is invalid (above); nothing was started" in done.stderr
    assert "starting supervisord" not in done.stderr


# --- service mode ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(
    images: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Container, bytes]]:
    """A service-mode container given its key the recommended way: a mounted file."""
    secrets_dir = tmp_path_factory.mktemp("secrets")
    key = new_key()
    key_file = secrets_dir / "session-key"
    key_file.write_bytes(base64.b64encode(key) + b"\n")
    key_file.chmod(0o600)
    container = Container.start(
        "elspeth-test-service",
        [
            f"--volume={key_file}:/run/secrets/elspeth-session-key:ro",
            "--env=ELSPETH_SIDECAR_SESSION_KEY_FILE=/run/secrets/elspeth-session-key",
        ],
    )
    try:
        container.wait_until_daemon_running()
        yield container, key
    finally:
        container.remove()


def test_supervisorctl_status_shows_the_daemon_running(service: tuple[Container, bytes]) -> None:
    container, _ = service
    done = container.exec("supervisorctl", "status")
    lines = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()}
    assert lines["sidecar-daemon"] == "RUNNING"
    assert lines["orchestrator"] == "STOPPED"
    assert container.exec("supervisorctl", "status", "sidecar-daemon").returncode == 0


def test_supervisor_socket_is_closed_to_appplugin(service: tuple[Container, bytes]) -> None:
    container, _ = service
    done = container.exec("supervisorctl", "status", user="appplugin")
    assert done.returncode != 0
    assert "Permission denied" in done.stdout + done.stderr


def test_exec_run_as_appuser(service: tuple[Container, bytes]) -> None:
    container, _ = service
    done = preview_as_appuser(container, SAMPLE, "/workspace/exec-output")
    assert ": complete" in done.stdout


def test_session_key_in_no_process_environment(service: tuple[Container, bytes]) -> None:
    container, key = service
    found = environments(container)
    tree = supervisord_tree(found)
    assert len(tree) >= 4  # entrypoint, supervisord, listener, daemon
    assert_key_absent({pid: environ for pid, (_, environ) in found.items()}, key)
    assert not [pid for pid, environ in tree.items() if b"ELSPETH_SIDECAR_SESSION_KEY" in environ]


def test_environment_key_never_reaches_supervisords_tree(images: str) -> None:
    key = new_key()
    container = Container.start(
        "elspeth-test-env-key",
        [f"--env=ELSPETH_SIDECAR_SESSION_KEY={base64.b64encode(key).decode()}"],
    )
    try:
        container.wait_until_daemon_running()
        found = environments(container)
        tree = supervisord_tree(found)
        assert 1 in tree
        assert_key_absent(tree, key)
        assert not [pid for pid, env in tree.items() if b"ELSPETH_SIDECAR_SESSION_KEY" in env]
        # What the docs warn about: `exec` itself is given the container's variables.
        exec_ids = [pid for pid, (parent, _) in found.items() if parent == 0 and pid != 1]
        assert any(b"ELSPETH_SIDECAR_SESSION_KEY" in found[pid][1] for pid in exec_ids)
    finally:
        container.remove()


def test_podman_logs_show_the_daemon(service: tuple[Container, bytes]) -> None:
    container, _ = service
    done = podman("logs", container.name)
    assert "listening on /run/sidecar/auth.sock" in done.stdout + done.stderr
    assert "session key installed from ELSPETH_SIDECAR_SESSION_KEY_FILE" in done.stderr


def test_sudo_lists_only_the_worker_and_reaper(service: tuple[Container, bytes]) -> None:
    container, _ = service
    done = container.exec("sudo", "-n", "-l", user="appuser")
    assert done.returncode == 0, done.stderr
    entries = _sudo.allowed_commands(done.stdout)
    assert {entry.runas for entry in entries} == {"appplugin"}
    assert {entry.command for entry in entries} == _sudo.expected_commands(VENV_PYTHON)
    # The seed's `sudo -u appplugin -l` is a usage error on sudo 1.9 (the README says so).
    assert container.exec("sudo", "-n", "-u", "appplugin", "id", user="appuser").returncode != 0


def test_manual_spawn_starts_and_refuses_a_closed_channel(service: tuple[Container, bytes]) -> None:
    container, _ = service
    done = container.exec(
        "sh",
        "-c",
        "sudo -u appplugin python -m elspeth.orchestrator.worker_process </dev/null",
        user="appuser",
    )
    assert done.returncode == 3  # the worker's documented "refused to start"
    assert "the orchestrator closed the channel" in done.stderr


def troubleshooting_commands() -> list[str]:
    """Every ``docker exec elspeth ...`` command in docker/README.md's Troubleshooting section,
    as written (inline code may wrap across lines)."""
    text = (REPO_ROOT / "docker" / "README.md").read_text("utf-8")
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    spans = (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", section))
    return [span for span in spans if span.startswith("docker exec ")]


def test_the_readme_lists_troubleshooting_commands() -> None:
    commands = troubleshooting_commands()
    assert len(commands) >= 10, commands
    seed_spawn = "sudo -u appplugin python -m elspeth.orchestrator.worker_process"
    assert f"docker exec elspeth {seed_spawn}" in commands


@pytest.mark.parametrize("command", troubleshooting_commands())
def test_troubleshooting_commands_work_as_the_readme_shows_them(
    service: tuple[Container, bytes], command: str
) -> None:
    """Run as shown, with ``podman`` for ``docker`` and the test's container for ``elspeth``:
    each exits 0, except the manual spawn, which starts and, given no input, exits 3 as the
    README says it does."""
    container, _ = service
    words = shlex.split(command)
    words[words.index("elspeth")] = container.name
    done = podman(*words[1:])
    if "elspeth.orchestrator.worker_process" in command:
        assert done.returncode == 3, done.stderr
        assert "refusing to start: the orchestrator closed the channel" in done.stderr
        return
    assert done.returncode == 0, f"{command}: {done.stdout[-1000:]} {done.stderr[-1000:]}"
    expected = re.search(re.escape(command) + r"`\s+prints\s+`([^`]+)`", readme_flat())
    if expected is not None:
        assert done.stdout.strip() == expected.group(1)


def readme_flat() -> str:
    """docker/README.md with every run of whitespace one space (inline code wraps)."""
    return " ".join((REPO_ROOT / "docker" / "README.md").read_text("utf-8").split())


def test_worker_cannot_read_the_session_key(service: tuple[Container, bytes]) -> None:
    container, _ = service
    done = container.exec("cat", "/run/sidecar/.session", user="appplugin")
    assert done.returncode != 0
    assert "Permission denied" in done.stderr


def test_stopping_a_service_exits_zero(images: str) -> None:
    container = Container.start("elspeth-test-stop", [])
    try:
        container.wait_until_daemon_running()
        assert podman("stop", "--time=20", container.name).returncode == 0
        wait_for(lambda: container.status() == "exited", "the container to exit")
        exit_code = podman("inspect", "--format={{.State.ExitCode}}", container.name).stdout
        assert exit_code.strip() == "0"
    finally:
        container.remove()


@pytest.mark.parametrize("stop", ["podman stop", "supervisorctl stop orchestrator"])
def test_stopping_a_job_stops_the_run_and_the_container_says_so(
    images: str, tmp_path: Path, stop: str
) -> None:
    """``podman stop`` (TERM to PID 1) and ``supervisorctl stop orchestrator`` (TERM to the
    orchestrator's wrapper) both reach the CLI: the run ends ``stopped`` (its workers and the
    manifest closed) and the container exits 130. A CLI the stop missed would finish or be
    killed with supervisord, and neither writes ``stopped`` nor gives 130."""
    suite = yaml.safe_load((REPO_ROOT / "examples" / "suite-sidecar.yaml").read_text("utf-8"))
    # One request a second: the run is still asking the model when the stop comes.
    suite["defaults"]["rate_limits"] = {"requests_per_minute": 60}
    suite["datasource"]["path"] = "/opt/elspeth/examples/service_requests.csv"
    config = tmp_path / "config"
    config.mkdir()
    (config / "slow.yaml").write_text(yaml.safe_dump(suite), "utf-8")
    for path in (tmp_path, config, config / "slow.yaml"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    output = tmp_path / "output"
    output.mkdir()
    os.chown(output, APPUSER_UID, APPUSER_UID)
    container = Container.start(
        "elspeth-test-stop-job",
        [
            "--env=ORCHESTRATOR_ARGS=--settings /workspace/suite/slow.yaml "
            "--output-dir /workspace/output",
            f"--volume={config}:/workspace/suite:ro",
            f"--volume={output}:/workspace/output",
        ],
    )
    try:
        wait_for(lambda: any(output.glob("*/checkpoint-*.jsonl")), "the job to ask the model")
        if stop == "podman stop":
            assert podman("stop", "--time=30", container.name).returncode == 0
        else:
            done = container.exec("supervisorctl", "stop", "orchestrator")
            assert "orchestrator: stopped" in done.stdout, done.stdout + done.stderr
        wait_for(lambda: container.status() == "exited", "the container to exit")
        exit_code = podman("inspect", "--format={{.State.ExitCode}}", container.name).stdout
        logs = podman("logs", container.name)
    finally:
        container.remove()
    assert exit_code.strip() == "130", logs.stdout[-3000:] + logs.stderr[-3000:]
    assert "job finished with status 130" in logs.stderr
    (manifest_path,) = output.glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text("utf-8"))
    assert (manifest["status"], manifest["reason"]) == ("stopped", "interrupted")


def test_a_restarted_container_keeps_its_session_key(images: str) -> None:
    container = Container.start("elspeth-test-restart", [])
    try:
        container.wait_until_daemon_running()
        before = container.exec("sha256sum", "/run/sidecar/.session", user="root").stdout
        assert podman("restart", "--time=20", container.name).returncode == 0
        container.wait_until_daemon_running()
        after = container.exec("sha256sum", "/run/sidecar/.session", user="root").stdout
        assert before.split()[0] == after.split()[0]
        logs = podman("logs", container.name)
        assert "keeping" in (logs.stdout + logs.stderr)
    finally:
        container.remove()


# --- what the runtime image ships --------------------------------------------------------------

BYTECODE_CHECK = r"""
import importlib.util, pathlib, struct, elspeth
root = pathlib.Path(elspeth.__file__).parent
stale = []
for source in root.rglob("*.py"):
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    try:
        header = cached.read_bytes()[:16]
    except FileNotFoundError:
        stale.append(f"{source}: no bytecode")
        continue
    flags, mtime, size = struct.unpack("<III", header[4:16])
    status = source.stat()
    expected = (int(status.st_mtime) & 0xFFFFFFFF, status.st_size & 0xFFFFFFFF)
    if flags == 0 and (mtime, size) != expected:
        stale.append(f"{source}: stale bytecode")
print(len(list(root.rglob("*.py"))), stale)
"""


def test_runtime_ships_valid_bytecode_and_no_compilers_or_tests(images: str) -> None:
    done = podman(
        "run",
        "--rm",
        "--user=appplugin",
        "--entrypoint=/opt/venv/bin/python",
        RUNTIME_IMAGE,
        "-I",
        "-c",
        BYTECODE_CHECK,
    )
    assert done.returncode == 0, done.stderr
    count, stale = done.stdout.split(" ", 1)
    assert int(count) > 50
    assert stale.strip() == "[]"
    done = podman(
        "run",
        "--rm",
        RUNTIME_IMAGE,
        "sh",
        "-c",
        "command -v gcc cc clang; ls -d /app /opt/venv/lib/python3*/site-packages/pytest",
    )
    assert done.stdout.strip() == ""


# --- the dev image -------------------------------------------------------------------------------


@pytest.mark.parametrize(("user_options", "expected"), [([], "appuser"), (["--user=root"], "root")])
def test_interactive_shells(images: str, user_options: list[str], expected: str) -> None:
    done = podman("run", "--rm", *user_options, "--entrypoint=/bin/bash", DEV_IMAGE, "-c", "id -un")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_dev_python_entrypoint_runs_the_runtime_tests(images: str) -> None:
    done = podman(
        "run",
        "--rm",
        "--entrypoint=python",
        DEV_IMAGE,
        "-m",
        "pytest",
        "tests/orchestrator/test_runtime.py",
        "-v",
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout


def test_dev_worker_isolation_runs_for_real(images: str) -> None:
    done = podman(
        "run",
        "--rm",
        "--env=ELSPETH_REQUIRE_ISOLATION_TESTS=1",
        DEV_IMAGE,
        "pytest",
        "tests/integration/test_worker_isolation.py",
        "-v",
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout
    assert "SKIPPED" not in done.stdout


def test_dev_plain_pytest_collects_the_default_marker_set(images: str) -> None:
    done = podman("run", "--rm", DEV_IMAGE, "pytest", "-v", "--collect-only", "-q")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "<Module test_runtime.py>" in done.stdout
    assert "<Module test_worker_isolation.py>" in done.stdout
    assert "<Module test_image.py>" not in done.stdout
    assert " deselected" in done.stdout


# --- a signed bundle with its key mounted as a Podman secret ----------------------------------


def test_a_bundle_signed_with_a_mounted_secret_verifies_outside_the_image(
    images: str, tmp_path: Path
) -> None:
    """The signing key reaches the image the way the docs say (a Podman secret, 0400, owned by
    appuser); the bundle made inside verifies outside, pinned to the public key, with the host's
    own verifier."""
    from elspeth.bundle import generate_signing_key, verify_bundle
    from elspeth.security import SecurityLevel

    keys = tmp_path / "keys"
    keys.mkdir()
    fingerprint = generate_signing_key(keys / "signing.pem", keys / "signing.pub.pem")
    config = tmp_path / "config"
    config.mkdir()
    settings = yaml.safe_load((REPO_ROOT / "examples" / "suite-sidecar.yaml").read_text("utf-8"))
    settings["datasource"]["path"] = "/opt/elspeth/examples/service_requests.csv"
    settings["sinks"]["bundle"] = {
        "type": "bundle",
        "clearance": settings["sinks"]["results_csv"]["clearance"],
        "signing": {"method": "ed25519", "private_key_path": "/run/secrets/bundle-signing-key"},
    }
    settings["reports"] = [*settings["reports"], "bundle"]
    (config / "signed.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), "utf-8")
    for path in (tmp_path, config, config / "signed.yaml"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    secret = "elspeth-test-bundle-signing-key"
    podman("secret", "rm", secret)
    created = podman("secret", "create", secret, str(keys / "signing.pem"))
    assert created.returncode == 0, created.stderr
    container = Container.start(
        "elspeth-test-signed",
        [
            f"--secret={secret},type=mount,uid={APPUSER_UID},mode=0400,target=bundle-signing-key",
            f"--volume={config}:/config:ro",
            "--env=ELSPETH_SIDECAR_SESSION_KEY=" + base64.b64encode(new_key()).decode(),
        ],
    )
    try:
        container.wait_until_daemon_running()
        done = preview_as_appuser(container, "/config/signed.yaml", "/workspace/signed")
        reports = [line.removeprefix("report: ") for line in done.stdout.splitlines()]
        bundles = [report for report in reports if report.endswith(".tar.gz")]
        assert len(bundles) == 1, done.stdout[-2000:]
        inside = container.exec(*CLI, "verify-bundle", bundles[0], user="appuser")
        assert inside.returncode == 0, inside.stderr
        assert fingerprint in inside.stdout
        copied = tmp_path / "bundle.tar.gz"
        assert podman("cp", f"{container.name}:{bundles[0]}", str(copied)).returncode == 0
    finally:
        container.remove()
        podman("secret", "rm", secret)

    verified = verify_bundle(copied, public_key=keys / "signing.pub.pem")
    assert verified.signer_pinned
    assert verified.signer_fingerprint == fingerprint
    assert verified.classification is SecurityLevel.parse(settings["datasource"]["classification"])
    assert bundles[0].endswith(f"__{verified.classification.name}.tar.gz")
