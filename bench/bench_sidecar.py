"""Sidecar benchmark: seal round trips against the real daemon and against the transport floor.

Run: ``.venv/bin/python bench/bench_sidecar.py [--quick]``. Prints a markdown table.

* ``verify_seal`` round trips/s and p50/p99 latency over 1 and over 8 connections (8 threads in
  one process, each with its own client, and 8 processes for a GIL-free view);
* the same framing against a raw Unix-socket echo server (asyncio, same length prefix, no CBOR,
  no HMAC, no audit) as the transport floor, with the same message sizes;
* batched seals/s (``derive_batch`` of ``max_batch`` items, then retire);
* daemon RSS after warm-up and after 1,000,000 sealing operations (batched).

The floor and the daemon are measured in alternating rounds within one run, so load from other
processes on the machine falls on both alike; the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from elspeth.security import DeriveRequest, FrameCertificate, SecurityLevel
from elspeth.sidecar import SidecarClient, start_standalone_daemon
from elspeth.sidecar._client._connection import _certificate_args
from elspeth.sidecar._protocol import MacKey, encode_request

LENGTH = struct.Struct(">I")


# --- the transport floor ---------------------------------------------------------------------


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while len(self.buffer) >= 4:
            (length,) = LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < 4 + length:
                break
            body = bytes(self.buffer[4 : 4 + length])
            del self.buffer[: 4 + length]
            out.append(LENGTH.pack(len(body)) + body)
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


def _echo_server(path: str, ready: multiprocessing.synchronize.Event) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_unix_server(_Echo, path)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


class EchoClient:
    """Blocking client with the sidecar client's framing, sending a fixed request body."""

    def __init__(self, path: str, body: bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.message = LENGTH.pack(len(body)) + body
        self.buffer = bytearray()

    def round_trip(self) -> None:
        self.sock.sendall(self.message)
        buffer = self.buffer
        while True:
            if len(buffer) >= 4:
                (length,) = LENGTH.unpack_from(buffer)
                if len(buffer) >= 4 + length:
                    del buffer[: 4 + length]
                    return
            buffer += self.sock.recv(65536)


# --- measurement helpers -----------------------------------------------------------------------


def _timed(operation: Callable[[], object], count: int) -> list[float]:
    latencies = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        operation()
        latencies.append(clock() - start)
    return latencies


def _alternating(
    operations: dict[str, Callable[[], tuple[list[float], float]]], rounds: int
) -> dict[str, tuple[float, float, float]]:
    """Run each measurement ``rounds`` times, interleaved; pool latencies and wall time."""
    latencies: dict[str, list[float]] = {name: [] for name in operations}
    walls = dict.fromkeys(operations, 0.0)
    for _ in range(rounds):
        for name, measure in operations.items():
            round_latencies, wall = measure()
            latencies[name] += round_latencies
            walls[name] += wall
    return {name: _summary(latencies[name], walls[name]) for name in operations}


def _serial(operation: Callable[[], object], count: int) -> tuple[list[float], float]:
    start = time.perf_counter()
    latencies = _timed(operation, count)
    return latencies, time.perf_counter() - start


def _summary(latencies: list[float], wall: float) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1e6
    p99 = ordered[int(len(ordered) * 0.99)] * 1e6
    return len(ordered) / wall, p50, p99


def _parallel(
    make_op: Callable[[], Callable[[], object]], threads: int, count: int
) -> tuple[list[float], float]:
    ops = [make_op() for _ in range(threads)]
    results: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        barrier.wait()
        results[index] = _timed(ops[index], count)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    return [x for r in results for x in r], wall


def _process_worker(
    kind: str, path: str, key: str, count: int, queue: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    op = _make_operation(kind, path, key)
    op()
    queue.put(("ready", None))
    start = time.perf_counter()
    latencies = _timed(op, count)
    queue.put(("done", (latencies, start, time.perf_counter())))


def _processes(
    kind: str, path: str, key: str, processes: int, count: int
) -> tuple[list[float], float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [
        multiprocessing.Process(target=_process_worker, args=(kind, path, key, count, queue))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    results = [queue.get() for _ in range(2 * processes)]
    for w in workers:
        w.join()
    done = [r[1] for r in results if r[0] == "done"]
    starts = min(d[1] for d in done)
    ends = max(d[2] for d in done)
    return [x for d in done for x in d[0]], ends - starts


_ECHO_BODY_SIZE = 0


def _make_operation(kind: str, path: str, key: str) -> Callable[[], object]:
    if kind == "echo":
        return EchoClient(path, b"\xa4" + b"x" * (_ECHO_BODY_SIZE - 1)).round_trip
    client = SidecarClient.connect(path, key)
    grant = client.authorize_construct(SecurityLevel.OFFICIAL, os.urandom(32))
    certificate = client.redeem_grant(grant)
    return lambda: client.verify_seal(certificate)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _batched(client: SidecarClient, parent: FrameCertificate, total: int) -> float:
    """Seals per second through derive_batch (then retire, so nothing accumulates)."""
    digest = os.urandom(32)
    requests = [DeriveRequest((parent.frame_id,), digest) for _ in range(client.max_batch)]
    done = 0
    start = time.perf_counter()
    while done < total:
        certificates = client.derive_batch(requests)
        client.retire([c.frame_id for c in certificates])
        done += len(certificates)
    return done / (time.perf_counter() - start)


def main() -> int:
    global _ECHO_BODY_SIZE  # noqa: PLW0603 - set once, read by forked workers
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations (smoke run)")
    options = parser.parse_args()
    round_trips = 2000 if options.quick else 20000
    per_connection = 500 if options.quick else 5000
    million = 50_000 if options.quick else 1_000_000
    rounds = 10
    load_before = os.getloadavg()

    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        # The threaded measurement opens 8 connections from this one process beside the
        # single-connection client: above the daemon's default per-peer limit of 8.
        daemon = start_standalone_daemon(
            state_dir=Path(scratch) / "state", settings={"max_connections_per_peer": 16}
        )
        with daemon:
            path, key = str(daemon.socket_path), str(daemon.session_key_path)
            # Size the echo body like a real verify_seal request, so both move the same bytes.
            with daemon.connect() as probe:
                grant = probe.authorize_construct(SecurityLevel.OFFICIAL, os.urandom(32))
                certificate = probe.redeem_grant(grant)
                _ECHO_BODY_SIZE = len(
                    encode_request(
                        MacKey(b"k" * 32),
                        b"n" * 32,
                        1,
                        "verify_seal",
                        _certificate_args(certificate),
                    )
                )
            echo_path = os.path.join(scratch, "echo.sock")
            ready = multiprocessing.Event()
            echo = multiprocessing.Process(
                target=_echo_server, args=(echo_path, ready), daemon=True
            )
            echo.start()
            ready.wait(10)

            echo_ops = _make_operation("echo", echo_path, key)
            seal_ops = _make_operation("seal", path, key)
            for warm in (echo_ops, seal_ops):
                _timed(warm, 500)
            single = _alternating(
                {
                    "echo": lambda: _serial(echo_ops, round_trips // rounds),
                    "seal": lambda: _serial(seal_ops, round_trips // rounds),
                },
                rounds,
            )
            threads = _alternating(
                {
                    "echo": lambda: _parallel(
                        lambda: _make_operation("echo", echo_path, key), 8, per_connection // 2
                    ),
                    "seal": lambda: _parallel(
                        lambda: _make_operation("seal", path, key), 8, per_connection // 2
                    ),
                },
                2,
            )
            processes = _alternating(
                {
                    "echo": lambda: _processes("echo", echo_path, key, 8, per_connection // 2),
                    "seal": lambda: _processes("seal", path, key, 8, per_connection // 2),
                },
                2,
            )
            echo.terminate()
            echo_one, seal_one = single["echo"], single["seal"]
            echo_eight, seal_eight = threads["echo"], threads["seal"]
            echo_procs, seal_procs = processes["echo"], processes["seal"]

            for name, seal, floor in (
                ("1 connection", seal_one, echo_one),
                ("8 connections (threads)", seal_eight, echo_eight),
                ("8 connections (processes)", seal_procs, echo_procs),
            ):
                rows.append(
                    (
                        f"verify_seal round trip, {name}",
                        f"{seal[0]:,.0f}/s (p50 {seal[1]:.0f} µs, p99 {seal[2]:.0f} µs)",
                        f"{floor[0]:,.0f}/s (p50 {floor[1]:.0f} µs, p99 {floor[2]:.0f} µs)",
                        f"{seal[0] / floor[0]:.2f}x floor",
                    )
                )

            with daemon.connect() as client:
                grant = client.authorize_construct(SecurityLevel.OFFICIAL, os.urandom(32))
                parent = client.redeem_grant(grant)
                pid = daemon.process.pid
                _batched(client, parent, 200_000 if not options.quick else 20_000)
                rss_warm = _rss_kib(pid)
                rate = _batched(client, parent, million)
                rss_after = _rss_kib(pid)
                rows.append(
                    (
                        f"batched derive ({client.max_batch}/request) + retire",
                        f"{rate:,.0f} seals/s",
                        "",
                        "aim ≥ 100,000/s",
                    )
                )
                rows.append(
                    (
                        f"daemon RSS after warm-up / after {million:,} more seals",
                        f"{rss_warm / 1024:.1f} MiB / {rss_after / 1024:.1f} MiB",
                        "",
                        "aim ≤ 40 MiB, flat",
                    )
                )

    load_after = os.getloadavg()
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.2f} at start, {load_after[0]:.2f} at end "
        f"(1-minute; {rounds} alternating rounds for 1 connection)\n"
    )
    print("| measurement | sidecar | echo floor | ratio / aim |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
