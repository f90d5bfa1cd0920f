"""Hostile and broken clients, replays, impostors, crashes, restarts and load."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
import pytest

from elspeth.security import DeriveRequest, SecurityLevel
from elspeth.sidecar import (
    DaemonProtocolError,
    DaemonRestartedError,
    DaemonUnavailableError,
    SidecarClient,
    StandaloneDaemon,
)
from elspeth.sidecar._protocol import (
    Greeting,
    MacKey,
    encode_greeting,
    frame,
)
from tests.sidecar.conftest import (
    DIGEST_A,
    DIGEST_B,
    RawConnection,
    start_daemon,
    write_config,
)

pytestmark = pytest.mark.integration


def _counters(client: SidecarClient) -> dict[str, object]:
    counters: dict[str, object] = client.health()["counters"]
    return counters


# --- replay and authentication -------------------------------------------------------------


def test_captured_request_replayed_on_the_same_connection_is_refused(
    raw: RawConnection, client: SidecarClient
) -> None:
    captured = raw.request_bytes("authorize_construct", {"level": 1, "digest": DIGEST_A})
    raw.send(captured)
    assert raw.reply().status == "ok"
    raw.send(captured)
    reply = raw.reply()
    assert reply.status == "error"
    assert reply.body["code"] == "replay"
    assert raw.closed_by_peer()


# docs/sidecar-protocol.md: ``seq`` is 1 for the first request on a connection, then +1 each
# time; an authentic request with a stale or skipped ``seq`` is a replay, and the connection is
# closed. So after ``last`` only ``last + 1`` is accepted: ``last`` (a repeat) and anything past
# ``last + 1`` (a skip, small or huge) are refused before the operation runs.
@pytest.mark.parametrize(
    ("accepted", "offset"),
    [
        (0, 0),  # the first request may not be seq 0
        (0, 2),  # nor skip seq 1
        (3, 0),  # last again
        (3, 2),  # last + 2
        (3, 3),  # last + 3
        (3, 2**40),  # a huge jump
        (3, 2**63 - 1 - 3),  # the largest seq the envelope allows
    ],
    ids=["first-0", "first-2", "last", "last+2", "last+3", "last+2^40", "seq-2^63-1"],
)
def test_a_sequence_number_that_does_not_advance_by_exactly_one_is_refused(
    daemon: StandaloneDaemon,
    session_key: bytes,
    client: SidecarClient,
    accepted: int,
    offset: int,
) -> None:
    connection = RawConnection(daemon.socket_path, session_key)
    try:
        # last + 1 is accepted, every time.
        for expected in range(1, accepted + 1):
            reply = connection.call("health", {})
            assert (reply.status, reply.seq) == ("ok", expected)
        last = accepted
        seq = last + offset
        issued = _counters(client)["grants_issued"]
        connection.send(
            connection.request_bytes(
                "authorize_construct", {"level": 1, "digest": DIGEST_A}, seq=seq
            )
        )
        reply = connection.reply()
        assert (reply.status, reply.seq, reply.body["code"]) == ("error", seq, "replay")
        assert reply.body["message"].startswith(f"sequence number {seq} where {last + 1} was due")
        assert connection.closed_by_peer()
        # Refused before the operation ran: no grant was issued for it.
        assert _counters(client)["grants_issued"] == issued
    finally:
        connection.close()


def test_each_sequence_number_one_past_the_last_is_accepted_and_runs(
    daemon: StandaloneDaemon, session_key: bytes, client: SidecarClient
) -> None:
    """The accepted edge (last + 1), with an operation that changes state: each one runs."""
    connection = RawConnection(daemon.socket_path, session_key)
    try:
        issued = _counters(client)["grants_issued"]
        for seq in (1, 2, 3):
            connection.send(
                connection.request_bytes(
                    "authorize_construct", {"level": 1, "digest": DIGEST_A}, seq=seq
                )
            )
            reply = connection.reply()
            assert (reply.status, reply.seq) == ("ok", seq)
        assert _counters(client)["grants_issued"] == issued + 3  # type: ignore[operator]
        connection.send(connection.request_bytes("health", {}, seq=4))
        assert connection.reply().status == "ok"  # the connection is still open
    finally:
        connection.close()


def test_captured_request_replayed_on_a_new_connection_is_refused(
    daemon: StandaloneDaemon, session_key: bytes, client: SidecarClient
) -> None:
    first = RawConnection(daemon.socket_path, session_key)
    captured = first.request_bytes("authorize_construct", {"level": 1, "digest": DIGEST_A})
    first.send(captured)
    assert first.reply().status == "ok"
    first.close()
    before = _counters(client)["bad_macs"]
    second = RawConnection(daemon.socket_path, session_key)
    assert second.greeting.nonce != first.greeting.nonce
    second.send(captured)
    reply = second.reply()
    assert reply.body["code"] == "bad_mac"
    assert second.closed_by_peer()
    assert _counters(client)["bad_macs"] == before + 1  # type: ignore[operator]
    second.close()


def test_wrong_key_is_refused_and_counted(raw: RawConnection, client: SidecarClient) -> None:
    before = _counters(client)["bad_macs"]
    raw.send(raw.request_bytes("health", {}, key=bytes(32)))
    reply = raw.reply()
    assert reply.status == "error"
    assert reply.body["code"] == "bad_mac"
    assert _counters(client)["bad_macs"] == before + 1  # type: ignore[operator]


def test_client_with_the_wrong_key_fails_at_the_greeting(
    daemon: StandaloneDaemon, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    wrong.chmod(0o600)
    with pytest.raises(DaemonProtocolError, match="session key differs"):
        SidecarClient.connect(daemon.socket_path, wrong)


def test_client_detects_an_impostor_socket(tmp_path: Path) -> None:
    key_path = tmp_path / "key"
    key_path.write_bytes(os.urandom(32))
    key_path.chmod(0o600)
    socket_path = tmp_path / "impostor.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(1)

    def impostor() -> None:
        connection, _ = listener.accept()
        greeting = Greeting(1, os.urandom(32), os.urandom(16), "sidecar", 1 << 20, 64)
        connection.sendall(frame(encode_greeting(MacKey(os.urandom(32)), greeting)))
        connection.recv(1)
        connection.close()

    thread = threading.Thread(target=impostor)
    thread.start()
    with pytest.raises(DaemonProtocolError, match="not the real daemon"):
        SidecarClient.connect(socket_path, key_path, timeout=5)
    thread.join(5)
    listener.close()


# --- malformed input -----------------------------------------------------------------------


def _assert_still_serving(daemon: StandaloneDaemon) -> None:
    with daemon.connect(timeout=5, op_timeout=5) as other:
        assert other.health()["status"] == "ok"


@pytest.mark.parametrize(
    "payload",
    [
        frame(b"\xff\xfe garbage"),
        frame(cbor2.dumps([1, 2, 3])),
        frame(cbor2.dumps({"op": 1, "seq": "x", "args": {}, "mac": 5})),
        frame(cbor2.dumps({"op": "health", "seq": 1, "args": b"\xa0", "mac": bytes(32), "x": 1})),
        frame(cbor2.dumps(cbor2.CBORTag(35, "a+"))),
        frame(b""),
        b"\xff\xff\xff\xff",
        b"\x00\x10\x00\x01" + b"x" * 100,
    ],
    ids=[
        "garbage",
        "array",
        "wrong-types",
        "extra-key",
        "tag",
        "empty",
        "huge-length",
        "over-limit",
    ],
)
def test_malformed_frames_close_the_connection_and_the_daemon_keeps_serving(
    raw: RawConnection, daemon: StandaloneDaemon, payload: bytes
) -> None:
    raw.send(payload)
    reply = raw.reply()
    assert reply.status == "error"
    assert reply.body["code"] in {"bad_frame", "bad_request"}
    assert raw.closed_by_peer()
    _assert_still_serving(daemon)


def test_wrong_argument_types_are_refused_and_the_connection_stays(raw: RawConnection) -> None:
    cases = [
        ("authorize_construct", {"level": "SECRET", "digest": DIGEST_A}, "level"),
        ("authorize_construct", {"level": 1, "digest": DIGEST_A[:31]}, "digest"),
        ("authorize_construct", {"level": 9, "digest": DIGEST_A}, "level"),
        ("authorize_construct", {"level": True, "digest": DIGEST_A}, "level"),
        ("derive", {"parent_ids": [], "digest": DIGEST_A}, "parent_ids"),
        ("derive", {"parent_ids": ["../../etc"], "digest": DIGEST_A}, "parent_ids[0]"),
        ("verify_seal", {"frame_id": "0" * 32 + "-1", "level": 1, "digest": DIGEST_A}, "seal"),
        ("health", {"verbose": True}, "verbose"),
    ]
    for op, args, field in cases:
        reply = raw.call(op, args)
        assert reply.status == "error", (op, args)
        assert reply.body["code"] == "bad_request"
        assert field in reply.body["message"]
    assert raw.call("health", {}).status == "ok"


def test_truncated_frame_is_dropped_after_the_read_timeout(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(read_timeout_seconds=0.3)
    key = daemon.session_key_path.read_bytes()
    stalled = RawConnection(daemon.socket_path, key)
    whole = stalled.request_bytes("health", {})
    stalled.send(whole[: len(whole) // 2])
    started = time.monotonic()
    assert stalled.closed_by_peer(timeout=5)
    assert time.monotonic() - started < 3
    with daemon.connect() as client:
        assert client.health()["counters"]["dropped_connections"]["read_timeout"] == 1


def test_a_stalled_client_does_not_block_others(
    raw: RawConnection, daemon: StandaloneDaemon
) -> None:
    raw.send(raw.request_bytes("health", {})[:10])
    with daemon.connect() as other:
        started = time.monotonic()
        for _ in range(50):
            other.health()
        assert time.monotonic() - started < 5


IDLE_TIMEOUT = 0.3


def _wait_for_eof(sock: socket.socket, deadline: float) -> bytes | None:
    """What the first recv that does not time out returns before ``deadline``; None if none."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(min(left, 0.05))
        try:
            return sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            continue
    return None


def test_idle_connections_are_closed_and_the_client_reconnects(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(idle_timeout_seconds=IDLE_TIMEOUT)
    with daemon.connect() as client:
        boot_id = client.boot_id
        first = client.health()["counters"]
        assert first["dropped_connections"].get("idle_timeout", 0) == 0
        # A second connection, opened after the client's last request, that sends nothing. Both
        # are idle from here; the client's has been idle for longer, so it goes no later.
        opened = time.monotonic()
        idle = RawConnection(daemon.socket_path, daemon.session_key_path.read_bytes())
        assert _wait_for_eof(idle.sock, opened + IDLE_TIMEOUT + 10) == b"", (
            "the daemon did not close an idle connection"
        )
        assert time.monotonic() - opened >= IDLE_TIMEOUT, "closed before it was idle"
        idle.close()
        # The client's own socket is closed by the daemon too: it reads end-of-file.
        assert client._sock is not None
        assert _wait_for_eof(client._sock, time.monotonic() + 5) == b""
        # The next call notices, reconnects transparently, and reaches the same daemon.
        counters = client.health()["counters"]
        assert client.boot_id == boot_id
        assert counters["dropped_connections"]["idle_timeout"] >= 2
        assert counters["connections_total"] >= first["connections_total"] + 2
        assert counters["connections_open"] == 1


def test_connection_limit(fresh_daemon: Callable[..., StandaloneDaemon]) -> None:
    daemon = fresh_daemon(max_connections=2)
    key = daemon.session_key_path.read_bytes()
    held = [RawConnection(daemon.socket_path, key) for _ in range(2)]
    # Authenticated connections are never shed to make room (unauthenticated ones would be).
    for connection in held:
        assert connection.call("health", {}).status == "ok"
    with pytest.raises((ConnectionError, OSError)):
        RawConnection(daemon.socket_path, key, timeout=2)
    held[0].close()
    deadline = time.monotonic() + 5
    while True:
        try:
            extra = RawConnection(daemon.socket_path, key, timeout=2)
            break
        except (ConnectionError, OSError):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert extra.call("health", {}).body["counters"]["dropped_connections"]["max_connections"] >= 1
    for connection in (*held[1:], extra):
        connection.close()


# --- peer credentials ----------------------------------------------------------------------


def test_peer_not_in_the_allow_list_is_refused_and_counted(tmp_path: Path) -> None:
    # Allow only some other uid: this (non-root or root) test process is the refused peer.
    other_uid = os.getuid() + 4242
    config = write_config(tmp_path / "d", allowed_uids=[other_uid])
    process = start_daemon(config)
    try:
        socket_path = tmp_path / "d" / "auth.sock"
        key_path = tmp_path / "d" / ".session"
        with pytest.raises(DaemonUnavailableError):
            SidecarClient.wait_until_ready(socket_path, key_path, timeout=1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"refused peer uid={os.getuid()}" in stderr
    assert "pid=" in stderr
    assert "command=" in stderr


# --- crashes, restarts, shutdown -----------------------------------------------------------


def test_sigkill_mid_run_fails_the_client_promptly(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon()
    client = daemon.connect(op_timeout=30)
    certificate = client.redeem_grant(client.authorize_construct(SecurityLevel.OFFICIAL, DIGEST_A))
    errors: list[BaseException] = []
    running = threading.Event()

    def hammer() -> None:
        try:
            while True:
                client.verify_seal(certificate)
                running.set()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    assert running.wait(10)
    killed_at = time.monotonic()
    daemon.process.kill()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - killed_at < 5
    assert len(errors) == 1
    assert isinstance(errors[0], DaemonUnavailableError)
    with pytest.raises(DaemonUnavailableError):
        client.verify_seal(certificate)
    client.close()


def test_restarted_daemon_is_fatal_for_the_client(tmp_path: Path) -> None:
    config = write_config(tmp_path / "d")
    socket_path = tmp_path / "d" / "auth.sock"
    key_path = tmp_path / "d" / ".session"
    first = start_daemon(config)
    client = SidecarClient.wait_until_ready(socket_path, key_path, timeout=10)
    record = b"checkpoint: run 42, chunk 3"
    mac = client.checkpoint_mac(record)
    first.send_signal(signal.SIGTERM)
    assert first.wait(10) == 0
    second = start_daemon(config)
    try:
        fresh = SidecarClient.wait_until_ready(socket_path, key_path, timeout=10)
        # The checkpoint key persists across restarts: the old MAC still verifies.
        assert fresh.checkpoint_verify(record, mac) is True
        assert fresh.boot_id != client.boot_id
        fresh.close()
        with pytest.raises(DaemonRestartedError):
            client.health()
        # Fatal for good, even though the new daemon answers.
        with pytest.raises(DaemonRestartedError):
            client.health()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
        client.close()


def test_sigterm_exits_cleanly_and_removes_the_socket(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon()
    client = daemon.connect()
    client.health()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    assert not daemon.socket_path.exists()
    assert "stopped cleanly" in daemon.stderr_text()
    with pytest.raises(DaemonUnavailableError):
        client.health()
    client.close()


def test_sigterm_answers_requests_already_sent(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon()
    connection = RawConnection(daemon.socket_path, daemon.session_key_path.read_bytes())
    pipelined = b"".join(connection.request_bytes("health", {}) for _ in range(20))
    connection.send(pipelined)
    daemon.process.send_signal(signal.SIGTERM)
    replies = [connection.reply() for _ in range(20)]
    assert [r.status for r in replies] == ["ok"] * 20
    assert daemon.process.wait(10) == 0


def test_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    config = write_config(tmp_path / "d")
    socket_path = tmp_path / "d" / "auth.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()  # bound, never listening: a leftover from a crash
    first = start_daemon(config)
    try:
        client = SidecarClient.wait_until_ready(
            socket_path, tmp_path / "d" / ".session", timeout=10
        )
        client.close()
        second = start_daemon(config)
        _, stderr = second.communicate(timeout=15)
        assert second.returncode == 1
        assert "already listening" in stderr
        assert socket_path.exists()
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(10)


def test_socket_is_never_world_accessible(daemon: StandaloneDaemon) -> None:
    mode = daemon.socket_path.stat().st_mode & 0o777
    assert mode == 0o660
    assert daemon.directory.stat().st_mode & 0o777 == 0o700


# --- load ----------------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_32_concurrent_clients_thousands_of_operations(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    # 32 clients in one process stand for 32 client processes: lift the per-peer limit.
    daemon = fresh_daemon(max_connections_per_peer=32)
    clients = [daemon.connect(op_timeout=60) for _ in range(32)]
    rounds = 250  # 4 operations per round: 1,000 operations per client, 32,000 in all
    errors: list[BaseException] = []
    rss: list[int] = []

    def work(client: SidecarClient, index: int) -> None:
        try:
            parent = client.redeem_grant(
                client.authorize_construct(SecurityLevel.OFFICIAL, DIGEST_A)
            )
            for i in range(rounds):
                child = client.derive([parent.frame_id], DIGEST_B)
                client.verify_seal(child)
                client.verify_batch([child, parent])
                client.retire([child.frame_id])
                if index == 0 and i % 50 == 0:
                    rss.append(_rss_kib(daemon.process.pid))
            client.retire([parent.frame_id])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not errors, errors[:3]
    health = clients[0].health()
    assert health["live_frames"] == 0
    assert health["grants"] == 0
    assert health["counters"]["requests"] >= 32 * rounds * 4
    assert not health["counters"]["refusals"]
    # Nothing accumulates: memory late in the run is close to memory early in it.
    assert rss[-1] - rss[1] < 8 * 1024, rss
    for client in clients:
        client.close()


def test_derive_batch_load_keeps_memory_flat(fresh_daemon: Callable[..., StandaloneDaemon]) -> None:
    daemon = fresh_daemon()
    with daemon.connect() as client:
        parent = client.redeem_grant(client.authorize_construct(SecurityLevel.OFFICIAL, DIGEST_A))
        requests = [DeriveRequest((parent.frame_id,), DIGEST_B)] * 1000
        samples = []
        for _ in range(20):
            certificates = client.derive_batch(requests)
            client.retire([c.frame_id for c in certificates])
            samples.append(_rss_kib(daemon.process.pid))
        assert client.health()["live_frames"] == 1
    assert samples[-1] - samples[4] < 4 * 1024, samples
