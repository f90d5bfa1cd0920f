"""The real daemon against peers that hoard connections or flood it with unauthenticated bytes.

Every test runs the daemon process and talks to it over its socket; holders of idle connections
are separate processes, so they have their own pid (the per-peer limit counts SO_PEERCRED pids).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2

from elspeth.sidecar import StandaloneDaemon
from elspeth.sidecar._daemon._server import REFUSAL_BURST
from elspeth.sidecar._protocol import frame, parse_reply
from tests.sidecar.conftest import RawConnection

MARKER = b"EVIL-MARKER-7f3a"

_HOLDER = """
import socket, sys
path, count = sys.argv[1], int(sys.argv[2])
held, greeted = [], 0
for _ in range(count):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    try:
        data = sock.recv(4)
    except OSError:
        data = b""
    greeted += bool(data)
    held.append(sock)
print(greeted, flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def holder(socket_path: Path, count: int) -> Iterator[tuple[int, int]]:
    """A separate process holding ``count`` idle connections; yields (its pid, how many were
    greeted, i.e. admitted)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(socket_path), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), f"holder failed: {line!r}"
        yield process.pid, int(line)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def served_within(daemon: StandaloneDaemon, seconds: float) -> dict[str, Any]:
    """Connect and get a health reply within ``seconds``; returns the counters."""
    start = time.monotonic()
    connection = RawConnection(
        daemon.socket_path, daemon.session_key_path.read_bytes(), timeout=seconds
    )
    try:
        reply = connection.call("health", {})
    finally:
        connection.close()
    elapsed = time.monotonic() - start
    assert reply.status == "ok"
    assert elapsed < seconds, f"served after {elapsed:.2f} s"
    counters: dict[str, Any] = reply.body["counters"]
    return counters


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def audit_lines(daemon: StandaloneDaemon) -> list[str]:
    return daemon.audit_log_path.read_text().splitlines()


# --- connection hoarding -------------------------------------------------------------------


def test_one_process_holding_idle_connections_cannot_lock_others_out(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(max_connections=6, max_connections_per_peer=4)
    with holder(daemon.socket_path, 4 + 5) as (_pid, greeted):
        assert greeted == 4
        counters = served_within(daemon, 1.0)
        assert counters["dropped_connections"]["max_connections_per_peer"] == 5
        # Not only once: the next connection is served too.
        served_within(daemon, 1.0)


def test_idle_holders_at_the_global_limit_are_shed_oldest_first(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(max_connections=6, max_connections_per_peer=4)
    with (
        holder(daemon.socket_path, 4) as (first_pid, first_greeted),
        holder(daemon.socket_path, 4) as (second_pid, second_greeted),
    ):
        assert (first_greeted, second_greeted) == (4, 4)
        for _ in range(3):
            counters = served_within(daemon, 1.0)
        # Two holder connections made room for the second holder, one for the first client; the
        # later clients reuse the slot the previous one closed.
        assert counters["dropped_connections"]["shed"] >= 2 + 1
        assert counters["dropped_connections"].get("max_connections", 0) == 0
        wait_until(
            lambda: (
                f"pid={first_pid} " in daemon.stderr_text()
                and "shed connection" in daemon.stderr_text()
            ),
            5,
            "the shed line in the daemon log",
        )
        events = [json.loads(line) for line in audit_lines(daemon) if '"event"' in line]
        shed = [event for event in events if event["event"] == "shed"]
        assert shed
        assert shed[0]["pid"] == first_pid  # the oldest went first
        assert {event["pid"] for event in shed} <= {first_pid, second_pid}


def test_authenticated_connections_are_not_shed(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(max_connections=3, max_connections_per_peer=4)
    key = daemon.session_key_path.read_bytes()
    working = [RawConnection(daemon.socket_path, key) for _ in range(2)]
    for connection in working:
        assert connection.call("health", {}).status == "ok"
    with holder(daemon.socket_path, 3) as (_pid, greeted):
        assert greeted == 3  # each new one sheds the previous: only one slot is unauthenticated
        for connection in working:
            assert connection.call("health", {}).status == "ok"
    for connection in working:
        connection.close()


def test_a_connection_must_authenticate_within_the_first_request_timeout(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(first_request_timeout_seconds=0.5)
    key = daemon.session_key_path.read_bytes()
    working = RawConnection(daemon.socket_path, key)
    assert working.call("health", {}).status == "ok"
    opened = time.monotonic()
    idle = RawConnection(daemon.socket_path, key)
    assert idle.closed_by_peer(timeout=10), "an idle unauthenticated connection stayed open"
    assert time.monotonic() - opened >= 0.5
    idle.close()
    reply = working.call("health", {})  # the authenticated one is only subject to idle_timeout
    assert reply.body["counters"]["dropped_connections"]["first_request_timeout"] >= 1
    working.close()


# --- nothing echoed, bounded audit ---------------------------------------------------------


def _garbage_frame() -> bytes:
    # 0x1c is a reserved CBOR initial byte: undecodable, whatever follows.
    return frame(b"\x1c" + MARKER * (512 * 1024 // len(MARKER)))


def _extra_key_frame() -> bytes:
    body = cbor2.dumps(
        {
            "op": "health",
            "seq": 1,
            "args": cbor2.dumps({}),
            "mac": bytes(32),
            (MARKER * 4096).decode(): MARKER.decode(),
        }
    )
    return frame(body)


def _bad_mac_frame() -> bytes:
    body = cbor2.dumps(
        {
            "op": MARKER.decode(),
            "seq": 987654321,
            "args": cbor2.dumps({MARKER.decode(): MARKER * 4096}),
            "mac": MARKER * 2,
        }
    )
    return frame(body)


def _refused(daemon: StandaloneDaemon, data: bytes) -> tuple[bytes, dict[str, Any], int]:
    """Send ``data`` on a new connection; returns (reply frame body, reply body, reply seq)."""
    connection = RawConnection(daemon.socket_path, daemon.session_key_path.read_bytes())
    try:
        connection.send(data)
        raw = connection.read_frame()
        reply = parse_reply(connection.mac, connection.greeting.nonce, raw)
        assert connection.closed_by_peer()
    finally:
        connection.close()
    return raw, reply.body, reply.seq


def test_unauthenticated_input_is_never_echoed_and_its_audit_line_is_bounded(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(audit_fsync_interval_seconds=0)
    for data, code in (
        (_garbage_frame(), "bad_frame"),
        (_extra_key_frame(), "bad_frame"),
        (_bad_mac_frame(), "bad_mac"),
    ):
        raw, body, seq = _refused(daemon, data)
        assert len(raw) + 4 < 256
        assert MARKER not in raw
        assert MARKER[:6] not in raw
        assert body["code"] == code
        assert seq == 0
        lines = audit_lines(daemon)
        assert len(lines[-1]) < 2048
        assert lines[-1].count('"status":"error"') == 1
    text = daemon.audit_log_path.read_text()
    assert MARKER.decode() not in text
    assert max(len(line) for line in text.splitlines()) < 4096


def test_thirty_refusals_bound_the_audit_log_and_are_all_counted(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(audit_fsync_interval_seconds=0, refusal_log_interval_seconds=3600)
    before = served_within(daemon, 5.0)
    size_before = daemon.audit_log_path.stat().st_size
    for index in range(30):
        _refused(daemon, _extra_key_frame() if index % 2 else _bad_mac_frame())
    growth = daemon.audit_log_path.stat().st_size - size_before
    assert growth <= 2 * REFUSAL_BURST * 512, f"audit log grew by {growth} bytes"
    after = served_within(daemon, 5.0)
    refusals = {
        code: after["refusals"].get(code, 0) - before["refusals"].get(code, 0)
        for code in ("bad_frame", "bad_mac")
    }
    assert refusals == {"bad_frame": 15, "bad_mac": 15}
    assert after["bad_macs"] - before["bad_macs"] == 15
    pid = os.getpid()
    daemon.stop()
    summaries = [json.loads(line) for line in audit_lines(daemon) if '"event":"refusals"' in line]
    by_code = {summary["code"]: summary for summary in summaries if summary["pid"] == pid}
    assert by_code["bad_frame"]["count"] == 15
    assert by_code["bad_mac"]["count"] == 15
    assert by_code["bad_mac"]["not_logged"] == 15 - REFUSAL_BURST


def test_refusals_are_summarised_in_the_daemon_log_each_interval(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(refusal_log_interval_seconds=0.3)
    for _ in range(REFUSAL_BURST + 5):
        _refused(daemon, _bad_mac_frame())
    pattern = f"refusals of code bad_mac from pid {os.getpid()} "
    wait_until(lambda: pattern in daemon.stderr_text(), 10, "a refusal summary line")
    assert MARKER.decode() not in daemon.stderr_text()
