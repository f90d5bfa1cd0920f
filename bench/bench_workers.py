"""Price of isolation: the built-in score extractor through a sandboxed worker vs in-process.

Both paths run the same plugin class over the same sealed frame, and both go through the same
proxy policy (``ProxyService``): the view is released only after its seal is checked (digest +
daemon round trip), and the result is digested and derived by the real standalone daemon. The
isolated path adds the Arrow IPC encode/decode, the socket transfer both ways and the worker's
process boundary (the view goes out whole; only the column the plugin adds comes back, as a
column update). Worker spawn is excluded (pools are pre-spawned); each path has one untimed
warm-up run (first-use imports, regex compilation, memory pools on either side), and the two
paths alternate run by run so that load from elsewhere on the machine hits both alike. The
pipe-transfer cost is also measured on its own: the view's IPC bytes sent through the same kind
of socket pair to a process that discards them.

Usage: python bench/bench_workers.py [--rows N] [--repeats K]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from elspeth.orchestrator._arrow import frame_to_ipc, ipc_to_frame
from elspeth.orchestrator._runtime._config import RuntimeConfig
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.orchestrator._runtime._proxies import ProxyService
from elspeth.plugins import FrameProxy, PluginContext, View
from elspeth.plugins._registry import PluginRegistry
from elspeth.security import SecureDataFrame, SecurityLevel
from elspeth.sidecar import start_standalone_daemon

PARAMETERS = {"source": "answer", "output": "score", "pattern": r"[Ss]core: (\d+)"}
LEVEL = SecurityLevel.OFFICIAL


class InProcessProxy:
    """The same proxy policy as for workers, without a process boundary (trusted code only)."""

    def __init__(self, service: ProxyService, worker_id: str, handle: str) -> None:
        self._service, self._worker_id, self._handle = service, worker_id, handle

    def get_view(self) -> View:
        reply = self._service.call(self._worker_id, "get_view", self._handle, {}, None)
        assert reply.data is not None
        return View(reply.data, reply.value["version"])

    def replace_data(self, data: pd.DataFrame, based_on_version: int) -> int:
        args = {"based_on_version": based_on_version, "update": False}
        reply = self._service.call(self._worker_id, "replace_data", self._handle, args, data)
        return int(reply.value["version"])


def run_in_process(frame: SecureDataFrame) -> SecureDataFrame:
    service = ProxyService()
    plugin = PluginRegistry(entry_points=False).build("score_extractor", PARAMETERS)
    step = service.open_step(
        worker_id="in-process",
        plugin=plugin.name,
        chunk_id="bench",
        clearance=plugin.clearance,
        frames=[frame],
        floor=LEVEL,
        output_level=LEVEL,
    )
    proxies: Sequence[FrameProxy] = [
        InProcessProxy(service, "in-process", h)  # type: ignore[misc]
        for h in step.handles
    ]
    plugin.run(proxies, PluginContext(plugin.name, "bench"))
    service.close_step(step, keep_outputs=True)
    return step.frames[0]


def socket_transfer_seconds(payload: memoryview) -> float:
    """Send ``payload`` through a socket pair to a process that reads and discards it."""
    ours, theirs = socket.socketpair()
    for end in (ours, theirs):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    reader = subprocess.Popen(["cat"], stdin=theirs.fileno(), stdout=subprocess.DEVNULL)
    theirs.close()
    started = time.perf_counter()
    ours.sendall(payload)
    ours.shutdown(socket.SHUT_WR)
    reader.wait()
    elapsed = time.perf_counter() - started
    ours.close()
    return elapsed


def timed(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time over ``repeats`` runs after one untimed warm-up run."""
    (median,), (result,) = alternating([function], repeats)
    return median, result


def alternating(
    functions: Sequence[Callable[[], object]], repeats: int
) -> tuple[list[float], list[object]]:
    """Median wall time of each function over ``repeats`` rounds, one run of each per round, after
    one untimed warm-up round: on a shared machine, load changes hit every path alike."""
    times: list[list[float]] = [[] for _ in functions]
    results = [function() for function in functions]
    for _ in range(repeats):
        for position, function in enumerate(functions):
            started = time.perf_counter()
            results[position] = function()
            times[position].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times], results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    texts = [
        f"The answer is reasonable. Score: {i % 10}. Reasoning: item {i} matches the rubric."
        for i in range(options.rows)
    ]
    data = pd.DataFrame({"id": range(options.rows), "answer": texts})
    del texts
    base = Path(tempfile.mkdtemp(prefix="elspeth-bench-"))
    with start_standalone_daemon(state_dir=base / "state") as daemon, daemon.connect() as client:
        frame = SecureDataFrame.create_from_datasource(data, LEVEL, client)
        config = RuntimeConfig(log_dir=base / "logs", scratch_root=base / "scratch", pool_size=1)
        with PluginRuntime(client, config) as runtime:
            runtime.pool(LEVEL).prestart()
            runtime.describe("score_extractor", PARAMETERS)
            (isolated, in_process), (result, local) = alternating(
                [
                    lambda: runtime.run(
                        "score_extractor", PARAMETERS, [frame], chunk_id="bench", plan_level=LEVEL
                    ).produced[0],
                    lambda: run_in_process(frame),
                ],
                options.repeats,
            )
        assert isinstance(result, SecureDataFrame)
        assert isinstance(local, SecureDataFrame)
        assert result.digest == local.digest, "both paths must produce the same content"
        verify, _ = timed(frame.verify_seal, options.repeats)
        payload = frame_to_ipc(frame.data)
        encode, _ = timed(lambda: frame_to_ipc(frame.data), options.repeats)
        decode, _ = timed(lambda: ipc_to_frame(payload), options.repeats)
        transfer = statistics.median(
            socket_transfer_seconds(payload) for _ in range(options.repeats)
        )

    mib = len(payload) / 2**20
    print(
        f"score_extractor over {options.rows:,} rows (median of {options.repeats}), "
        f"view = {mib:.1f} MiB of Arrow IPC\n"
    )
    print("| measurement | seconds | vs in-process |")
    print("|---|---:|---:|")
    rows = [
        ("in-process (view seal check + plugin + digest + derive)", in_process),
        ("isolated worker (same, + IPC out and back + socket + process boundary)", isolated),
        ("  of which: seal check of the view (digest + daemon)", verify),
        ("  view IPC encode (orchestrator)", encode),
        ("  view IPC decode (worker)", decode),
        (f"  socket transfer of the view alone ({mib / transfer:.0f} MiB/s)", transfer),
    ]
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} | {seconds / in_process:.2f}x |")
    print(f"\nprice of isolation: {isolated / in_process:.2f}x (aim: <= 1.5x)")


if __name__ == "__main__":
    main()
