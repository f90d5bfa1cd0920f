"""The worker boundary's limits on real workers: a stream judged from its headers before its
body is read, the payload bytes in flight from every worker of a run, and the size of each
worker's scratch directory.

Without them, each attack here made the orchestrator read a 60 MiB body it then refused, decode
50 million rows a stream announced in a few hundred bytes, hold one full payload per worker at
once, or let a plugin fill the disk with files each below the file-size limit.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from elspeth.errors import ConfigurationError
from elspeth.orchestrator._errors import PluginFailedError, ProxyRefusedError, WorkerCrashedError
from elspeth.orchestrator._groups import live_members, wait_until
from elspeth.orchestrator._runtime._config import (
    DEFAULT_MAX_IN_FLIGHT_BYTES,
    DEFAULT_SCRATCH_BYTES,
    RuntimeConfig,
    WorkerLimits,
)
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.orchestrator.worker_process._sandbox._landlock import SCOPES, kernel_abi
from elspeth.security import SecurityLevel
from elspeth.sidecar import SidecarClient
from tests.orchestrator.conftest import MakeFrame, MakeRuntime, assert_serves_a_call, prestart
from tests.orchestrator.test_worker_limits import rss_bytes

pytestmark = pytest.mark.integration
L = SecurityLevel
KiB, MiB = 1024, 1024**2


@pytest.fixture(autouse=True)
def daemon_stays_healthy(authority: SidecarClient) -> Iterator[None]:
    yield
    assert authority.health()["status"] == "ok"


def prepared(make_runtime: MakeRuntime, **settings: object) -> PluginRuntime:
    runtime = make_runtime(**settings)
    prestart(runtime)
    return runtime


def test_the_defaults() -> None:
    assert 256 * MiB == DEFAULT_MAX_IN_FLIGHT_BYTES == DEFAULT_SCRATCH_BYTES
    config = RuntimeConfig(log_dir=Path("/nonexistent/logs"))
    assert config.default_limits.scratch_bytes == DEFAULT_SCRATCH_BYTES
    # One file may not be larger than the scratch directory may hold.
    assert (
        WorkerLimits(file_size_limit_bytes=8 * MiB, scratch_bytes=2 * MiB).fsize_rlimit == 2 * MiB
    )


def test_bytes_in_flight_must_fit_one_full_payload() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"max_in_flight_bytes \(1048576\) must be at least max_payload_bytes",
    ):
        RuntimeConfig(
            log_dir=Path("/nonexistent/logs"), max_payload_bytes=2 * MiB, max_in_flight_bytes=MiB
        )


# --- a stream judged from its headers ------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "update", "reason"),
    [
        (
            "list_column",
            False,
            r"its schema cannot be sealed: column 'items' has dtype list<item: int64>",
        ),
        (
            "rows",
            True,
            r"it announces at least 4194304 rows; a column update of a 3-row frame has at most 3",
        ),
        (
            "null_rows",
            False,
            r"it announces at least 50000000 rows; a new frame from a step of 3 rows, in a "
            r"stream of \d+ bytes, has at most \d+",
        ),
    ],
)
def test_a_stream_whose_headers_are_wrong_is_refused_before_its_body_is_read(
    make_runtime: MakeRuntime, make_frame: MakeFrame, stream: str, update: bool, reason: str
) -> None:
    runtime = prepared(make_runtime, call_timeout=20.0)
    (old,) = runtime.pool(L.OFFICIAL).workers
    before = rss_bytes()
    with pytest.raises(
        ProxyRefusedError,
        match=rf"plugin 'lying_stream' on chunk 'x': data refused before its body was read: "
        rf"{reason}",
    ):
        runtime.run(
            "lying_stream",
            {"stream": stream, "update": update},
            [make_frame()],
            chunk_id="x",
            plan_level=L.OFFICIAL,
        )
    # The message and the stream's headers: a few KiB of a payload of up to 60 MiB, which the
    # plugin was still writing when its worker was killed.
    assert old.bytes_received < 64 * KiB
    grown = rss_bytes() - before
    assert grown < 16 * MiB, f"the orchestrator grew by {grown} bytes"
    assert runtime.in_flight_bytes == 0
    assert not live_members(old.pgid)
    assert_serves_a_call(runtime, make_frame)


# --- bytes in flight across workers --------------------------------------------------------


def test_a_payload_past_the_bytes_in_flight_is_refused_and_bytes_are_released(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    """One worker holds a payload in flight halfway; another's payload would go past the
    limit and is refused unread; once the first is consumed, the same payload fits."""
    runtime = prepared(
        make_runtime, pool_size=2, max_payload_bytes=MiB, max_in_flight_bytes=1536 * KiB
    )

    def call(chunk: str, **params: object) -> object:
        data = pd.DataFrame({"value": [1, 2, 3], "text": [chunk, chunk, chunk]})
        return runtime.run(
            "held_payload", params, [make_frame(data)], chunk_id=chunk, plan_level=L.OFFICIAL
        )

    with ThreadPoolExecutor(max_workers=1) as background:
        held = background.submit(call, "held", hold=True)
        assert wait_until(lambda: runtime.in_flight_bytes > 0, 20.0)
        holding = runtime.in_flight_bytes
        assert 700 * KiB < holding < MiB
        with pytest.raises(
            PluginFailedError,
            match=r"plugin 'held_payload' on chunk 'over': a payload of \d+ bytes with "
            rf"{holding} bytes already in flight would take the payload bytes in flight from "
            r"all workers past the run's limit of 1536 KiB \(max_in_flight_bytes\); the "
            r"payload was not read and the worker was replaced",
        ):
            call("over")
        assert runtime.in_flight_bytes == holding  # the refused payload was never counted
        for worker in runtime.pool(L.OFFICIAL).workers:
            Path(worker.scratch_dir, "release").touch()
        result = held.result(timeout=30)
    assert result.produced[0].shape == (100_000, 1)  # type: ignore[attr-defined]
    assert runtime.in_flight_bytes == 0
    assert call("again").produced[0].shape == (100_000, 1)  # type: ignore[attr-defined]
    assert runtime.in_flight_bytes == 0


# --- the scratch directory -----------------------------------------------------------------


def test_many_files_each_below_the_file_size_limit_stop_the_plugin_at_scratch_bytes(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = prepared(make_runtime, scratch_bytes=2 * MiB)
    (old,) = runtime.pool(L.OFFICIAL).workers
    with pytest.raises(
        WorkerCrashedError,
        match=r"plugin 'many_files' on chunk 'x': exceeded its scratch limit of 2 MiB "
        r"\(scratch_bytes\): its scratch directory held at least \d+ bytes: the worker was "
        r"killed",
    ):
        runtime.run("many_files", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    assert not live_members(old.pgid)
    assert not os.path.exists(old.scratch_dir)
    assert_serves_a_call(runtime, make_frame)


def test_one_file_larger_than_scratch_bytes_is_refused_by_the_kernel(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = prepared(make_runtime, scratch_bytes=MiB)
    (worker,) = runtime.pool(L.OFFICIAL).workers
    assert worker.sandbox_report["limits"]["file_size_bytes"] == MiB
    with pytest.raises(
        PluginFailedError,
        match=r"'big_file' on chunk 'x': exceeded its scratch limit of 1 MiB with one file "
        r"\(RLIMIT_FSIZE, scratch_bytes\)",
    ):
        runtime.run(
            "big_file", {"megabytes": 2}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL
        )


def test_a_plugin_with_a_scratch_limit_of_its_own_gets_it(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    tight = WorkerLimits(scratch_bytes=2 * MiB)
    runtime = make_runtime(plugin_limits={"many_files": tight})
    with pytest.raises(WorkerCrashedError, match=r"'many_files'.*scratch limit of 2 MiB"):
        runtime.run("many_files", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)


def test_a_dead_scratch_watcher_ends_the_call(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    """Fail closed: once nothing watches the scratch directory, the worker does not go on."""
    runtime = prepared(make_runtime)
    (old,) = runtime.pool(L.OFFICIAL).workers
    assert old.scratch_watcher is not None
    os.kill(old.scratch_watcher.pid, signal.SIGKILL)
    with pytest.raises(
        WorkerCrashedError,
        match=r"'sleeping' on chunk 'x': its scratch watcher ended \(status -9: no output\), "
        r"so nothing enforced its scratch limit of 256 MiB \(scratch_bytes\): the worker was "
        r"killed",
    ):
        runtime.run("sleeping", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    assert not live_members(old.pgid)
    assert_serves_a_call(runtime, make_frame)


def test_a_sandboxed_plugin_cannot_signal_its_scratch_watcher(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    """The watcher runs outside the worker's Landlock domain, whose signals are scoped to it."""
    abi, why = kernel_abi()
    if abi is None or abi < SCOPES["signal"].since_abi:
        pytest.skip(f"Landlock cannot scope signals here: {why or f'ABI {abi}'}")
    runtime = prepared(make_runtime)
    (worker,) = runtime.pool(L.OFFICIAL).workers
    result = runtime.run("signal_watchers", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    outcomes = result.produced[0].data["outcome"].tolist()
    assert outcomes
    assert set(outcomes) == {"EPERM"}
    assert worker.scratch_watcher is not None
    assert live_members(worker.scratch_watcher.pid)  # it leads a session (and group) of its own
