"""Resource limits on real workers: a limit hit is the plugin's error and names the limit.

Each attack here was run against the real workers: a payload announced just under the old 2 GiB
cap made the orchestrator read all of it before refusing it, and a plugin had 8 GiB of address
space and could fill its scratch directory without limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from elspeth.errors import ConfigurationError
from elspeth.orchestrator._errors import (
    PluginFailedError,
    ProxyRefusedError,
    WorkerCrashedError,
    WorkerProtocolError,
)
from elspeth.orchestrator._groups import live_members
from elspeth.orchestrator._runtime._config import (
    DEFAULT_CPU_LIMIT_SECONDS,
    DEFAULT_FILE_SIZE_LIMIT_BYTES,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MEMORY_LIMIT_BYTES,
    RuntimeConfig,
    WorkerLimits,
)
from elspeth.orchestrator._runtime._plugin_runtime import PluginInfo
from elspeth.orchestrator._wire import ProtocolError
from elspeth.plugins._declaration import describe
from elspeth.plugins.builtin._score_extractor import ScoreExtractor
from elspeth.security import SecurityLevel
from elspeth.sidecar import SidecarClient
from tests.orchestrator.conftest import (
    MakeFrame,
    MakeRuntime,
    assert_serves_a_call,
    prestart,
    wait_for_text,
)

pytestmark = pytest.mark.integration
L = SecurityLevel
MiB = 1024**2


@pytest.fixture(autouse=True)
def daemon_stays_healthy(authority: SidecarClient) -> Iterator[None]:
    yield
    assert authority.health()["status"] == "ok"


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_the_defaults_are_modest() -> None:
    assert 64 * MiB == DEFAULT_MAX_PAYLOAD_BYTES
    assert DEFAULT_MEMORY_LIMIT_BYTES == 2 * 1024**3
    assert 256 * MiB == DEFAULT_FILE_SIZE_LIMIT_BYTES
    assert DEFAULT_CPU_LIMIT_SECONDS == 3600
    config = RuntimeConfig(log_dir=Path("/nonexistent/logs"))
    assert config.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES
    assert config.memory_limit_bytes == DEFAULT_MEMORY_LIMIT_BYTES


def test_a_payload_above_the_cap_is_refused_before_it_is_read(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(call_timeout=20.0)
    prestart(runtime)
    (old,) = runtime.pool(L.OFFICIAL).workers
    size = DEFAULT_MAX_PAYLOAD_BYTES + 1
    before = rss_bytes()
    with pytest.raises(
        WorkerProtocolError,
        match=rf"'oversized_payload' on chunk 'x': payload of {size} bytes announced; "
        rf"the payload limit is {DEFAULT_MAX_PAYLOAD_BYTES} bytes",
    ):
        runtime.run(
            "oversized_payload", {"size": size}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL
        )
    grown = rss_bytes() - before
    assert grown < 16 * MiB, f"the orchestrator grew by {grown} bytes"
    assert not live_members(old.pgid)


def test_a_large_payload_below_a_raised_cap_still_travels(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    """The cap is configurable: raised, the same announcement passes it and reaches the stream
    reader, which refuses the zeros it is from their first eight bytes."""
    runtime = make_runtime(call_timeout=20.0, max_payload_bytes=128 * MiB)
    with pytest.raises(
        ProxyRefusedError,
        match="data refused before its body was read: a message lacks the continuation marker",
    ):
        runtime.run(
            "oversized_payload",
            {"size": DEFAULT_MAX_PAYLOAD_BYTES + 1},
            [make_frame()],
            chunk_id="x",
            plan_level=L.OFFICIAL,
        )


def test_a_file_above_the_file_size_limit_fails_naming_the_limit(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(file_size_limit_bytes=1 * MiB)
    with pytest.raises(
        PluginFailedError,
        match=r"'big_file' on chunk 'x': exceeded its file-size limit of 1 MiB "
        r"\(RLIMIT_FSIZE, file_size_limit_bytes\).*file_size_limit",
    ):
        runtime.run(
            "big_file", {"megabytes": 2}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL
        )
    (worker,) = runtime.pool(L.OFFICIAL).workers
    assert wait_for_text(worker.stderr.path, "File too large")


def test_a_file_below_the_limit_is_written(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(file_size_limit_bytes=4 * MiB)
    result = runtime.run(
        "big_file", {"megabytes": 2}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL
    )
    assert not result.skipped


def test_allocating_beyond_the_address_space_limit_fails_naming_the_limit(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(memory_limit_bytes=DEFAULT_MEMORY_LIMIT_BYTES)
    with pytest.raises(
        PluginFailedError,
        match=r"'huge_allocation' on chunk 'x': exceeded its address-space limit of 2 GiB "
        r"\(RLIMIT_AS, memory_limit_bytes\).*address_space_limit",
    ):
        runtime.run(
            "huge_allocation", {"gigabytes": 3}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL
        )
    # The worker survives its plugin's MemoryError and serves the next call.
    assert_serves_a_call(runtime, make_frame)


def test_spinning_past_the_cpu_limit_fails_naming_the_limit(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(cpu_limit_seconds=4, call_timeout=30.0)
    with pytest.raises(
        WorkerCrashedError,
        match=r"'infinite_loop' on chunk 'x': exceeded its CPU-time limit of 4 s "
        r"\(RLIMIT_CPU, cpu_limit_seconds\): the worker was killed",
    ):
        runtime.run("infinite_loop", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)


def test_a_plugin_with_limits_of_its_own_runs_in_a_pool_of_its_own(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    tight = WorkerLimits(file_size_limit_bytes=1 * MiB)
    runtime = make_runtime(file_size_limit_bytes=8 * MiB, plugin_limits={"big_file": tight})
    assert runtime.config.limits_for("big_file") == tight
    assert runtime.config.limits_for("other").file_size_limit_bytes == 8 * MiB
    with pytest.raises(PluginFailedError, match=r"'big_file'.*file-size limit of 1 MiB"):
        runtime.run(
            "big_file", {"megabytes": 2}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL
        )
    (tight_worker,) = runtime.pool(L.OFFICIAL, tight).workers
    assert tight_worker.sandbox_report["limits"]["file_size_bytes"] == 1 * MiB
    # The default pool's workers keep the runtime's default limits.
    runtime.pool(L.OFFICIAL).prestart()
    (default_worker,) = runtime.pool(L.OFFICIAL).workers
    assert default_worker.sandbox_report["limits"]["file_size_bytes"] == 8 * MiB


def test_worker_limits_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="cpu_limit_seconds must be a positive integer"):
        WorkerLimits(cpu_limit_seconds=0)


@pytest.mark.parametrize("floor", [-1, "4294967296", 2.0, True, None])
def test_unit_a_described_memory_floor_that_is_not_a_byte_count_is_a_protocol_error(
    floor: object,
) -> None:
    """A worker's description is untrusted: a floor it cannot mean is refused, not coerced."""
    info = describe(ScoreExtractor)
    with pytest.raises(ProtocolError, match="malformed plugin description: min_memory_limit"):
        PluginInfo.from_wire({**info, "min_memory_limit_bytes": floor})
    assert PluginInfo.from_wire(info).min_memory_limit_bytes == 0
