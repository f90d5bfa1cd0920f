"""The daemon's three locks with real users: file permissions, SO_PEERCRED, the request HMAC.

The daemon runs as ``sidecar``; every client is a subprocess running as ``appuser`` or
``appplugin``, never root. Each lock is tested alone: the other two are opened on purpose (the
socket and its directory made world-accessible, ``appplugin`` given a copy of the key, or
``appplugin`` admitted by the allow-list of a second daemon), and a control shows that with the
lock under test opened too, the same client gets through.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration._daemon import KEY_SIZE, DaemonHandle, daemon_as_sidecar, spawn_daemon
from tests.integration._processes import run_json_as, stop_process, wait_for
from tests.integration._provision import make_directory, write_private_file
from tests.integration._tier import Tier

pytestmark = [pytest.mark.root, pytest.mark.integration]

Outcome = dict[str, Any]


def probe(tier: Tier, user: str, *actions: dict[str, Any]) -> list[Outcome]:
    """Run client actions as ``user`` in one subprocess; one outcome per action."""
    argv = [str(tier.python), "-I", str(tier.script("sidecar_client_probe.py"))]
    outcomes: list[Outcome] = run_json_as(tier.users[user], [*argv, json.dumps(list(actions))])
    return outcomes


def counters(tier: Tier, daemon: DaemonHandle) -> dict[str, Any]:
    """The daemon's counters, asked as ``appuser`` with the real key."""
    (outcome,) = probe(tier, "appuser", _health(daemon))
    result: dict[str, Any] = outcome["ok"]["counters"]
    return result


def _health(daemon: DaemonHandle, key: Path | None = None) -> dict[str, Any]:
    key = daemon.session_key_path if key is None else key
    return {"action": "health", "socket_path": str(daemon.socket_path), "key_path": str(key)}


def _round_trip(daemon: DaemonHandle, key: Path, level: str = "OFFICIAL") -> dict[str, Any]:
    return {
        "action": "seal_round_trip",
        "socket_path": str(daemon.socket_path),
        "key_path": str(key),
        "level": level,
    }


@contextlib.contextmanager
def opened(*paths_and_modes: tuple[Path, int]) -> Iterator[None]:
    """Loosen file modes on purpose for one check; restore them whatever happens."""
    saved = [(path, stat.S_IMODE(path.stat().st_mode)) for path, _ in paths_and_modes]
    try:
        for path, mode in paths_and_modes:
            path.chmod(mode)
        yield
    finally:
        for path, mode in saved:
            path.chmod(mode)


@pytest.fixture(scope="module")
def daemon(root_tier: Tier, sidecar_daemon: DaemonHandle) -> DaemonHandle:
    return sidecar_daemon


def key_copy(tier: Tier, daemon: DaemonHandle, user: str, name: str) -> Path:
    """A copy of the daemon's session key that ``user`` can read: one lock opened on purpose."""
    directory = tier.appplugin_dir if user == "appplugin" else tier.appuser_dir
    assert directory is not None
    path = directory / name
    if not path.exists():
        write_private_file(path, daemon.session_key_path.read_bytes(), 0o600, tier.users[user])
    return path


def test_daemon_runs_as_sidecar_and_owns_its_socket_and_key(
    root_tier: Tier, daemon: DaemonHandle
) -> None:
    sidecar = root_tier.users["sidecar"]
    status = Path(f"/proc/{daemon.pid}/status").read_text()
    ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()}
    assert ids["Uid"] == [str(sidecar.uid)] * 4
    assert ids["Gid"] == [str(sidecar.gid)] * 4
    assert sorted(int(g) for g in ids["Groups"]) == list(sidecar.groups)
    for path, mode, kind in (
        (daemon.socket_path.parent, 0o750, stat.S_ISDIR),
        (daemon.socket_path, 0o660, stat.S_ISSOCK),
        (daemon.session_key_path, 0o640, stat.S_ISREG),
    ):
        info = path.lstat()
        assert kind(info.st_mode), path
        assert stat.S_IMODE(info.st_mode) == mode, path
        assert (info.st_uid, info.st_gid) == (sidecar.uid, sidecar.gid), path
    assert daemon.session_key_path.stat().st_size == KEY_SIZE
    (health,) = probe(root_tier, "appuser", _health(daemon))
    assert health["ok"]["mode"] == "sidecar"


def test_appuser_with_the_key_seals_and_derives_a_frame(
    root_tier: Tier, daemon: DaemonHandle
) -> None:
    (outcome,) = probe(root_tier, "appuser", _round_trip(daemon, daemon.session_key_path))
    sealed = outcome["ok"]
    assert sealed["mode"] == "sidecar"
    assert (sealed["level"], sealed["derived_level"]) == ("OFFICIAL", "OFFICIAL")
    assert sealed["frame_id"] != sealed["derived_frame_id"]


def test_secret_frames_are_accepted_in_sidecar_mode(root_tier: Tier, daemon: DaemonHandle) -> None:
    """Standalone daemons refuse levels above OFFICIAL_SENSITIVE; the real one does not."""
    (outcome,) = probe(root_tier, "appuser", _round_trip(daemon, daemon.session_key_path, "SECRET"))
    assert outcome["ok"]["level"] == "SECRET"
    assert outcome["ok"]["derived_level"] == "SECRET"  # a floor of OFFICIAL cannot lower it


def test_appplugin_cannot_read_the_session_key(root_tier: Tier, daemon: DaemonHandle) -> None:
    read_key = {"action": "read_file", "path": str(daemon.session_key_path)}
    assert probe(root_tier, "appuser", read_key) == [{"ok": KEY_SIZE}]
    assert probe(root_tier, "appplugin", read_key) == [{"errno": "EACCES"}]
    # The directory is one lock, the key file's own 0640 another: open the first on purpose.
    with opened((daemon.socket_path.parent, 0o755)):
        assert probe(root_tier, "appplugin", read_key) == [{"errno": "EACCES"}]


def test_file_permissions_alone_keep_appplugin_away_from_the_socket(root_tier: Tier) -> None:
    """A daemon that admits ``appplugin`` by SO_PEERCRED, and ``appplugin`` holding the key:
    only the socket's directory (0750) and the socket's mode (0660) stand in the way."""
    with daemon_as_sidecar(
        python=root_tier.python,
        sidecar=root_tier.users["sidecar"],
        run_dir=root_tier.home / "permissive-run",
        state_dir=root_tier.home / "permissive-state",
        config_dir=root_tier.home / "daemons",
        name="permissive",
        settings={"allowed_users": ["appuser", "appplugin"]},
    ) as permissive:
        key = key_copy(root_tier, permissive, "appplugin", "permissive.key")
        attempts = (
            {"action": "greeting", "socket_path": str(permissive.socket_path)},
            _round_trip(permissive, key),
        )
        closed = probe(root_tier, "appplugin", *attempts)
        assert closed[0] == {"errno": "EACCES"}
        assert closed[1]["error"] == "DaemonUnavailableError"
        assert "Permission denied" in closed[1]["message"]
        with opened((permissive.socket_path.parent, 0o755)):
            assert probe(root_tier, "appplugin", attempts[0]) == [{"errno": "EACCES"}]
            with opened((permissive.socket_path, 0o666)):
                greeted, sealed = probe(root_tier, "appplugin", *attempts)
    assert greeted == {"ok": "greeted"}
    assert sealed["ok"]["level"] == "OFFICIAL"


def test_so_peercred_alone_refuses_appplugin(root_tier: Tier, daemon: DaemonHandle) -> None:
    """Socket and directory opened to everyone and ``appplugin`` given the key: the allow-list
    (``appuser`` only) still refuses it, counts the refusal and logs its uid."""
    appplugin = root_tier.users["appplugin"]
    key = key_copy(root_tier, daemon, "appplugin", "main.key")
    before = counters(root_tier, daemon)
    with opened((daemon.socket_path.parent, 0o755), (daemon.socket_path, 0o666)):
        greeting, client = probe(
            root_tier,
            "appplugin",
            {"action": "greeting", "socket_path": str(daemon.socket_path)},
            {
                "action": "client_connect",
                "socket_path": str(daemon.socket_path),
                "key_path": str(key),
            },
        )
        # Control: with the same modes, an allowed peer gets through.
        (allowed,) = probe(root_tier, "appuser", _health(daemon))
    after = counters(root_tier, daemon)
    assert greeting == {"ok": "closed"}
    assert client["error"] == "DaemonUnavailableError"
    assert allowed["ok"]["status"] == "ok"
    assert after["refused_peers"] - before["refused_peers"] == 2
    refusals = [
        message
        for message in daemon.log_messages()
        if re.match(rf"refused peer uid={appplugin.uid} pid=\d+ command=", message)
    ]
    assert len(refusals) >= 2
    assert daemon.session_key_path.read_bytes().hex() not in daemon.log_text()


def test_the_hmac_alone_refuses_appuser_with_a_wrong_key(
    root_tier: Tier, daemon: DaemonHandle
) -> None:
    """``appuser`` passes file permissions and SO_PEERCRED; with the wrong key the client
    rejects the daemon's greeting, and a request MAC'd with it is refused and counted."""
    wrong = root_tier.appuser_dir / "wrong.key"
    if not wrong.exists():
        write_private_file(wrong, secrets.token_bytes(KEY_SIZE), 0o600, root_tier.users["appuser"])
    socket_path = str(daemon.socket_path)
    before = counters(root_tier, daemon)
    client, forged, honest = probe(
        root_tier,
        "appuser",
        {"action": "client_connect", "socket_path": socket_path, "key_path": str(wrong)},
        {"action": "forged_request", "socket_path": socket_path, "key_path": str(wrong)},
        {
            "action": "forged_request",
            "socket_path": socket_path,
            "key_path": str(daemon.session_key_path),
        },
    )
    after = counters(root_tier, daemon)
    assert client["error"] == "DaemonProtocolError"
    assert "does not authenticate" in client["message"]
    assert forged["ok"] == {
        "greeted": True,
        "status": "error",
        "code": "bad_mac",
        "closed_after": True,
    }
    assert honest["ok"]["status"] == "ok"  # the same request with the right key is answered
    assert after["bad_macs"] - before["bad_macs"] == 1
    assert after["refusals"].get("bad_mac", 0) - before["refusals"].get("bad_mac", 0) == 1
    assert os.stat(wrong).st_uid == root_tier.users["appuser"].uid


# --- who owns the session key ----------------------------------------------------------------


@contextlib.contextmanager
def daemon_with_key_owned_by(
    tier: Tier, owner: str | None, name: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """Start the daemon as ``sidecar`` on a session key (0640, group ``sidecar``) owned by
    ``owner`` (root when ``None``); yields the process, the key path and the log path."""
    sidecar = tier.users["sidecar"]
    run_dir = tier.home / f"{name}-run"
    state_dir = tier.home / f"{name}-state"
    shutil.rmtree(run_dir, ignore_errors=True)
    make_directory(run_dir, 0o750, sidecar)
    make_directory(state_dir, 0o700, sidecar)
    account = None if owner is None else tier.users[owner]
    key = write_private_file(run_dir / ".session", secrets.token_bytes(KEY_SIZE), 0o640, account)
    os.chown(key, -1, sidecar.gid)
    config = tier.home / "daemons" / f"{name}.toml"
    settings = {
        "mode": "sidecar",
        "socket_path": str(run_dir / "auth.sock"),
        "session_key_path": str(key),
        "checkpoint_key_path": str(state_dir / "checkpoint.key"),
        "audit_log_path": str(state_dir / "audit.jsonl"),
        "allowed_users": ["appuser"],
        "socket_group": "sidecar",
        "log_format": "json",
    }
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    config.chmod(0o644)
    log_path = tier.home / "daemons" / f"{name}.log"
    process = spawn_daemon(tier.python, sidecar, config, log_path)
    try:
        yield process, key, log_path
    finally:
        stop_process(process)
        shutil.rmtree(run_dir, ignore_errors=True)


def test_a_session_key_owned_by_another_user_is_refused(root_tier: Tier) -> None:
    """``appplugin:sidecar`` 0640 passes every mode check, but its owner could chmod it or
    swap the key: the daemon (``sidecar``) refuses it, naming the path, the owner and the fix."""
    with daemon_with_key_owned_by(root_tier, "appplugin", "foreign-key") as (process, key, log):
        status = process.wait(timeout=15)
        text = log.read_text("utf-8", "replace")
    appplugin, sidecar = root_tier.users["appplugin"], root_tier.users["sidecar"]
    assert status == 1, text
    assert f"session key file {key} is owned by uid {appplugin.uid} (appplugin)" in text
    assert f"uid {sidecar.uid} (sidecar) or uid 0" in text
    assert f"chown sidecar {key}" in text


@pytest.mark.parametrize("owner", ["sidecar", None], ids=["sidecar", "root"])
def test_a_session_key_owned_by_the_daemon_user_or_root_is_accepted(
    root_tier: Tier, owner: str | None
) -> None:
    name = f"owned-by-{owner or 'root'}"
    with daemon_with_key_owned_by(root_tier, owner, name) as (process, key, log):
        wait_for(
            lambda: process.poll() is not None or b"listening on" in log.read_bytes(),
            20.0,
            f"the {name} daemon to listen",
        )
        assert process.poll() is None, log.read_text("utf-8", "replace")
        handle = DaemonHandle(key.parent / "auth.sock", key, log, process)
        (outcome,) = probe(root_tier, "appuser", _health(handle))
        assert outcome["ok"]["status"] == "ok"
        assert os.stat(key).st_uid == (0 if owner is None else root_tier.users[owner].uid)
        assert stop_process(process) == 0
