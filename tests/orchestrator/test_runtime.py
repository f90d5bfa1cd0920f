"""The plugin runtime with real worker processes (standalone mode) and the real sidecar daemon."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from elspeth.errors import ConfigurationError
from elspeth.orchestrator._errors import (
    PluginFailedError,
    PluginTimeoutError,
    RuntimeLevelMismatchError,
    WorkerCrashedError,
)
from elspeth.orchestrator._groups import live_members
from elspeth.orchestrator._runtime._config import ErrorPolicy
from elspeth.orchestrator._runtime._plugin_runtime import PluginCall, PluginRuntime
from elspeth.security import SecurityLevel
from elspeth.sidecar import SidecarClient
from tests.orchestrator.conftest import MakeFrame, MakeRuntime, prestart, wait_for_text

pytestmark = pytest.mark.integration
L = SecurityLevel
SCORES = {"source": "text", "output": "score", "pattern": r"score: (\d+)"}


def test_happy_path_runs_the_builtin_score_extractor_and_seals_the_result(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    frame = make_frame()
    result = shared_runtime.run(
        "score_extractor", SCORES, [frame], chunk_id="chunk-1", plan_level=L.OFFICIAL
    )
    (produced,) = result.produced
    assert produced.frame_id != frame.frame_id
    assert produced.security_level is L.OFFICIAL
    assert produced.verify_seal() > 0
    scores = produced.data["score"].tolist()
    assert scores[:2] == [4.0, 9.0]
    assert math.isnan(scores[2])
    assert list(frame.data.columns) == ["value", "text"]


def test_a_view_larger_than_the_message_limit_moves_as_a_raw_payload(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(max_message_bytes=64 * 1024)
    rows = 20_000
    data = pd.DataFrame(
        {"value": range(rows), "text": [f"score: {i % 10} padding" for i in range(rows)]}
    )
    result = runtime.run(
        "score_extractor", SCORES, [make_frame(data)], chunk_id="big", plan_level=L.OFFICIAL
    )
    assert result.produced[0].data["score"].sum() == sum(i % 10 for i in range(rows))


def test_bad_parameters_are_reported_before_any_data_moves(
    shared_runtime: PluginRuntime, make_frame: MakeFrame, authority: SidecarClient
) -> None:
    frame = make_frame()
    issued = authority.health()["counters"]["frames_issued"]
    with pytest.raises(
        ConfigurationError, match=r"score_extractor.*pattern.*exactly one capture group"
    ):
        shared_runtime.run(
            "score_extractor",
            {**SCORES, "pattern": r"score: \d+"},
            [frame],
            chunk_id="c",
            plan_level=L.OFFICIAL,
        )
    with pytest.raises(ConfigurationError, match=r"unknown plugin 'nope'.*score_extractor"):
        shared_runtime.describe("nope")
    assert authority.health()["counters"]["frames_issued"] == issued


def test_plugin_error_names_plugin_and_chunk_and_keeps_its_text_private(
    shared_runtime: PluginRuntime, make_frame: MakeFrame, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PluginFailedError) as failure:
        shared_runtime.run("failing", {}, [make_frame()], chunk_id="chunk-7", plan_level=L.OFFICIAL)
    message = str(failure.value)
    assert "'failing'" in message
    assert "'chunk-7'" in message
    assert "ROW-CONTENT" not in message
    worker = shared_runtime.pool(L.OFFICIAL).workers[0]
    log_path = Path(message.split("error text is in ")[1].split(" (classified", maxsplit=1)[0])
    assert log_path.parent == shared_runtime.config.log_dir
    assert "OFFICIAL" in log_path.name
    assert oct(log_path.stat().st_mode & 0o777) == "0o600"
    assert wait_for_text(log_path, "ROW-CONTENT-1")
    assert "ROW-CONTENT" not in caplog.text
    assert worker.returncode is None  # a plugin exception does not cost the worker


def test_crashed_worker_is_replaced(make_runtime: MakeRuntime, make_frame: MakeFrame) -> None:
    runtime = make_runtime()
    pool = runtime.pool(L.OFFICIAL)
    pool.prestart()
    (old,) = pool.workers
    with pytest.raises(WorkerCrashedError, match=r"'crashing' on chunk 'c-1'.*replaced"):
        runtime.run("crashing", {}, [make_frame()], chunk_id="c-1", plan_level=L.OFFICIAL)
    assert old.returncode == 7
    (new,) = pool.workers
    assert new is not old
    assert new.pgid != old.pgid
    assert not live_members(old.pgid)
    assert not os.path.exists(old.scratch_dir)
    result = runtime.run(
        "score_extractor", SCORES, [make_frame()], chunk_id="c-2", plan_level=L.OFFICIAL
    )
    assert result.produced


def test_hung_plugin_is_killed_within_the_timeout_and_reported(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(call_timeout=1.5)
    prestart(runtime)
    (worker,) = runtime.pool(L.OFFICIAL).workers
    started = time.monotonic()
    with pytest.raises(PluginTimeoutError, match=r"'sleeping' on chunk 'slow'.*1.5s"):
        runtime.run("sleeping", {}, [make_frame()], chunk_id="slow", plan_level=L.OFFICIAL)
    assert time.monotonic() - started < 1.5 + 3.0
    assert worker.returncode is not None
    assert not live_members(worker.pgid)


def test_skip_policy_absorbs_a_failure_and_keeps_the_inputs(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(error_policies={"failing": ErrorPolicy.SKIP})
    frame = make_frame()
    result = runtime.run("failing", {}, [frame], chunk_id="c-3", plan_level=L.OFFICIAL)
    assert result.skipped
    assert isinstance(result.error, PluginFailedError)
    assert result.frames == (frame,)
    assert result.produced == ()


def test_printing_to_stdout_does_not_corrupt_the_channel_and_stderr_stays_private(
    make_runtime: MakeRuntime, make_frame: MakeFrame, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runtime = make_runtime()
    result = runtime.run("printing", {}, [make_frame()], chunk_id="p", plan_level=L.OFFICIAL)
    assert result.produced[0].data["value"].tolist() == [2, 4, 6]
    (worker,) = runtime.pool(L.OFFICIAL).workers
    runtime.close()
    text = worker.stderr.path.read_text()
    for sentinel in (
        "PRINTED-TO-STDOUT",
        "RAW-FD1-BYTES",
        "STDERR-SENTINEL",
        "CONTEXT-LOG-SENTINEL",
    ):
        assert sentinel in text
        assert sentinel not in caplog.text
    assert text.startswith("# elspeth worker stderr; classification: OFFICIAL")
    assert f"{worker.stderr.path}" in caplog.text  # the operational log has the path and size


def test_stderr_is_capped(make_runtime: MakeRuntime, make_frame: MakeFrame) -> None:
    runtime = make_runtime(stderr_cap_bytes=20)
    runtime.run("printing", {}, [make_frame()], chunk_id="p", plan_level=L.OFFICIAL)
    (worker,) = runtime.pool(L.OFFICIAL).workers
    runtime.close()
    assert worker.stderr.captured == 20
    assert worker.stderr.dropped > 0
    assert "more bytes dropped" in worker.stderr.path.read_text()


def test_aggregator_over_several_chunks_takes_the_join_of_their_levels(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    chunks = [
        make_frame(pd.DataFrame({"value": [1.0, 2.0]}), L.OFFICIAL),
        make_frame(pd.DataFrame({"value": [3.0]}), L.OFFICIAL_SENSITIVE),
        make_frame(pd.DataFrame({"value": [6.0]}), L.OFFICIAL),
    ]
    result = shared_runtime.run(
        "mean_aggregator", {}, chunks, chunk_id="all", plan_level=L.OFFICIAL_SENSITIVE
    )
    (summary,) = result.produced
    assert summary.security_level is L.OFFICIAL_SENSITIVE
    assert summary.data.to_dict("list") == {"chunks": [3], "mean": [3.0]}
    assert summary.verify_seal() > 0


def test_output_floor_and_metadata(shared_runtime: PluginRuntime, make_frame: MakeFrame) -> None:
    result = shared_runtime.run("floored", {}, [make_frame()], chunk_id="f", plan_level=L.OFFICIAL)
    (produced,) = result.produced
    assert produced.security_level is L.OFFICIAL_SENSITIVE
    assert produced.data.to_dict("list") == {
        "level": ["OFFICIAL"],
        "rows": [3],
        "cols": ["value,text"],
    }
    uplifted = shared_runtime.run(
        "uplifting", {}, [make_frame()], chunk_id="u", plan_level=L.OFFICIAL
    )
    assert uplifted.produced[0].security_level is L.OFFICIAL_SENSITIVE
    # The uplifted frame holds the sample data at OFFICIAL_SENSITIVE; while it lives, the daemon
    # would refuse the next test's OFFICIAL origin frame of that data.
    uplifted.produced[0].retire()


def test_runtime_level_differing_from_the_plan_is_an_internal_error(
    shared_runtime: PluginRuntime, make_frame: MakeFrame, authority: SidecarClient
) -> None:
    frame = make_frame(level=L.OFFICIAL_SENSITIVE)
    with pytest.raises(
        RuntimeLevelMismatchError, match=r"internal error.*OFFICIAL_SENSITIVE.*OFFICIAL"
    ):
        shared_runtime.run("score_extractor", SCORES, [frame], chunk_id="m", plan_level=L.OFFICIAL)


def test_pools_are_keyed_by_plan_level_and_serve_calls_concurrently(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    def rows_of(level: SecurityLevel) -> pd.DataFrame:
        # Distinct content per level: the daemon refuses an origin frame at a lower level for
        # content that is live at a higher one.
        return pd.DataFrame({"value": [level.rank], "text": [f"score: {level.rank}"]})

    calls = [
        PluginCall("score_extractor", SCORES, [make_frame(rows_of(level), level)], f"c{i}", level)
        for i, level in enumerate([L.OFFICIAL, L.OFFICIAL, L.UNOFFICIAL, L.UNOFFICIAL])
    ]
    results = shared_runtime.run_many(calls)
    assert [r.produced[0].security_level for r in results] == [c.plan_level for c in calls]
    official = {w.pgid for w in shared_runtime.pool(L.OFFICIAL).workers}
    unofficial = {w.pgid for w in shared_runtime.pool(L.UNOFFICIAL).workers}
    assert official
    assert unofficial
    assert not official & unofficial
    assert all(w.taint is L.UNOFFICIAL for w in shared_runtime.pool(L.UNOFFICIAL).workers)


def test_the_worker_never_sees_sidecar_code_or_secrets(
    make_runtime: MakeRuntime, make_frame: MakeFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELSPETH_SIDECAR_SESSION_KEY", "c2VjcmV0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    monkeypatch.setenv("OPENAI_API_KEY", "nope")
    runtime = make_runtime()
    result = runtime.run(
        "probe_environment", {}, [make_frame()], chunk_id="e", plan_level=L.OFFICIAL
    )
    report = result.produced[0].data
    seen = {
        kind: set(report.loc[report["kind"] == kind, "value"]) for kind in report["kind"].unique()
    }
    assert not {m for m in seen["module"] if "sidecar" in m}
    original = seen["original_env"]
    if original == {"UNREADABLE"}:
        # Only a non-root worker that is no longer dumpable may be refused its own block.
        assert os.geteuid() != 0
        original = seen["env"]
    for names in (seen["env"], original):
        assert not {n for n in names if "SESSION" in n or "KEY" in n or "SIDECAR" in n}
        assert "PATH" in names
    assert seen["fd"] <= {"0", "1", "2", "3"}  # 3 is listdir's own descriptor
    (worker,) = runtime.pool(L.OFFICIAL).workers
    assert worker.sandbox_report["full"] is True


def test_shutdown_leaves_no_process_and_no_scratch_dir(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    runtime = make_runtime(pool_size=2)
    prestart(runtime)
    workers = runtime.pool(L.OFFICIAL).workers
    assert len(workers) == 2
    assert all(os.path.isdir(w.scratch_dir) for w in workers)
    runtime.close()
    for worker in workers:
        assert worker.returncode == 0  # it left politely
        assert not live_members(worker.pgid)
        assert not os.path.exists(worker.scratch_dir)


def test_an_unwarmed_workers_first_call_is_allowed_its_imports_and_no_more(
    make_runtime: MakeRuntime, make_frame: MakeFrame
) -> None:
    """Spawned on demand, a worker imports pandas inside its first request: that request gets
    the start-up timeout on top of the call timeout; its replacement is warmed as it starts, so
    the next call is timed by the call timeout alone."""
    runtime = make_runtime(call_timeout=1.0, startup_timeout=3.0)
    runtime._catalog.prestart()
    parameters = {"seconds": 30}
    started = time.monotonic()
    with pytest.raises(PluginTimeoutError, match=r"1.0s call timeout \(and the 3.0s start-up"):
        runtime.run("sleeping", parameters, [make_frame()], chunk_id="a", plan_level=L.OFFICIAL)
    assert time.monotonic() - started >= 1.0 + 3.0
    (replacement,) = runtime.pool(L.OFFICIAL).workers
    assert replacement.warmed
    started = time.monotonic()
    with pytest.raises(PluginTimeoutError, match=r"1.0s call timeout; "):
        runtime.run("sleeping", parameters, [make_frame()], chunk_id="b", plan_level=L.OFFICIAL)
    assert time.monotonic() - started < 1.0 + 3.0
