"""Hostile plugins in real workers: each attack is contained and reported; everything else lives.

Fork bombs are bounded inside the plugin because these tests may run as root, which the kernel
exempts from ``RLIMIT_NPROC``; the group kill is what must catch every child either way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pandas as pd
import pytest

from elspeth.orchestrator._errors import (
    PluginFailedError,
    PluginTimeoutError,
    ProxyRefusedError,
    WorkerProtocolError,
)
from elspeth.orchestrator._groups import group_members, live_members
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.orchestrator._runtime._proxies import ProxyService
from elspeth.security import SecureDataFrame, SecurityLevel
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


@pytest.fixture
def runtime(make_runtime: MakeRuntime) -> PluginRuntime:
    runtime = make_runtime(call_timeout=2.0)
    prestart(runtime)
    return runtime


@pytest.fixture(autouse=True)
def daemon_stays_healthy(authority: SidecarClient) -> Iterator[None]:
    yield
    assert authority.health()["status"] == "ok"


def only_worker(runtime: PluginRuntime):  # type: ignore[no-untyped-def]
    (worker,) = runtime.pool(L.OFFICIAL).workers
    return worker


def assert_replaced_and_usable(
    runtime: PluginRuntime, old_pgid: int, make_frame: MakeFrame
) -> None:
    assert not live_members(old_pgid)
    assert only_worker(runtime).pgid != old_pgid
    assert_serves_a_call(runtime, make_frame)


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        ("forged_handle", "unknown or revoked proxy handle"),
        ("replay_version", "based on version 1, but the frame is at version 2"),
        ("lower_level", r"with_uplifted_security_level\(UNOFFICIAL\) would lower a OFFICIAL frame"),
        ("uplift_past_plan", "past the plan's output level OFFICIAL"),
        ("misaligned_update", "the update's rows do not match the frame's index"),
    ],
)
def test_proxy_abuse_is_refused_naming_the_plugin_and_the_worker_is_replaced(
    runtime: PluginRuntime, make_frame: MakeFrame, plugin: str, reason: str
) -> None:
    old = only_worker(runtime)
    with pytest.raises(ProxyRefusedError, match=rf"plugin '{plugin}' on chunk 'x': .*{reason}"):
        runtime.run(plugin, {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    assert_replaced_and_usable(runtime, old.pgid, make_frame)


def test_a_handle_from_an_earlier_step_is_revoked(
    runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    runtime.run("keep_handle", {}, [make_frame()], chunk_id="first", plan_level=L.OFFICIAL)
    with pytest.raises(ProxyRefusedError, match=r"'stale_handle' on chunk 'second'.*revoked"):
        runtime.run("stale_handle", {}, [make_frame()], chunk_id="second", plan_level=L.OFFICIAL)


def test_another_workers_handle_is_refused(make_frame: MakeFrame) -> None:
    service = ProxyService()
    frame = make_frame()
    steps = [
        service.open_step(
            worker_id=worker,
            plugin=f"plugin-{worker}",
            chunk_id="c",
            clearance=L.OFFICIAL,
            frames=[frame],
            floor=L.OFFICIAL,
            output_level=L.OFFICIAL,
        )
        for worker in ("w1", "w2")
    ]
    assert service.call("w1", "get_view", steps[0].handles[0], {}, None).value == {"version": 1}
    with pytest.raises(ProxyRefusedError, match=r"'plugin-w2'.*issued to another worker"):
        service.call("w2", "get_view", steps[0].handles[0], {}, None)
    service.close_step(steps[0], keep_outputs=True)
    with pytest.raises(ProxyRefusedError, match=r"'plugin-w2'.*revoked"):
        service.call("w2", "get_view", steps[0].handles[0], {}, None)
    service.close_step(steps[1], keep_outputs=True)


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        ("garbage_on_channel", "not valid msgpack"),
        ("huge_message", "4294967295 bytes announced"),
        ("huge_payload", f"payload of {2**40} bytes announced"),
    ],
)
def test_malformed_and_huge_messages_kill_the_worker_not_the_orchestrator(
    runtime: PluginRuntime, make_frame: MakeFrame, plugin: str, reason: str
) -> None:
    old = only_worker(runtime)
    with pytest.raises(WorkerProtocolError, match=rf"'{plugin}' on chunk 'x'.*{reason}"):
        runtime.run(plugin, {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    assert_replaced_and_usable(runtime, old.pgid, make_frame)


def test_infinite_loop_ignoring_sigterm_is_killed(
    runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    old = only_worker(runtime)
    with pytest.raises(PluginTimeoutError, match="'infinite_loop' on chunk 'x'"):
        runtime.run("infinite_loop", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    assert_replaced_and_usable(runtime, old.pgid, make_frame)


def test_fork_bomb_with_setsid_and_double_fork_dies_with_its_group(
    runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    old = only_worker(runtime)
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(len(group_members(old.pgid)))
            stop.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with pytest.raises(PluginTimeoutError, match="'fork_bomb'"):
            runtime.run("fork_bomb", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    finally:
        stop.set()
        watcher.join()
    assert max(seen) > 20  # the children really were there, and stayed in the group
    assert_replaced_and_usable(runtime, old.pgid, make_frame)


def test_huge_allocation_fails_inside_the_worker(
    runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    old = only_worker(runtime)
    with pytest.raises(
        PluginFailedError, match=r"'huge_allocation' on chunk 'x'.*address-space limit"
    ):
        runtime.run("huge_allocation", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    assert only_worker(runtime) is old
    assert wait_for_text(old.stderr.path, "MemoryError")


def test_writing_to_fd_1_cannot_corrupt_the_channel(
    runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    result = runtime.run("printing", {}, [make_frame()], chunk_id="x", plan_level=L.OFFICIAL)
    assert result.produced[0].data["value"].tolist() == [2, 4, 6]


def test_a_frame_tampered_in_the_orchestrator_is_never_viewed(
    runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    frame = make_frame()
    object.__setattr__(frame, "_data", pd.DataFrame({"value": [9], "text": ["x"]}))
    with pytest.raises(Exception, match="content changed since it was sealed"):
        runtime.run(
            "score_extractor",
            {"source": "text", "output": "s", "pattern": r"(\d+)"},
            [frame],
            chunk_id="t",
            plan_level=L.OFFICIAL,
        )
    assert isinstance(frame, SecureDataFrame)
