"""Resume: after ``kill -9`` the run continues without asking the model again for checkpointed
answers; a tampered checkpoint is refused as a security matter (exit 3)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.suite.conftest import (
    CLI_TIMEOUT,
    MakeSuite,
    cli_command,
    manifest,
    read_results,
    requests_per_row,
    run_cli,
    summary_json,
)

pytestmark = pytest.mark.integration

CHECKPOINTED_BEFORE_KILL = 8
CONCURRENCY = 2


def complete_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text("utf-8").splitlines(keepends=True) if line[-1] == "\n"]


def checkpointed_rows(path: Path) -> list[int]:
    """Rows of every answer in every complete record (a record holds a batch of answers)."""
    return [
        answer[0]
        for line in complete_lines(path)
        for answer in json.loads(json.loads(line)["record"])["answers"]
    ]


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + CLI_TIMEOUT
    while len(checkpointed_rows(path)) < count:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, f"{path} never reached {count} lines"
        time.sleep(0.02)


def test_resume_after_kill_9_asks_nothing_twice(make_server, make_suite: MakeSuite) -> None:
    server = make_server(latency=0.15)
    suite = make_suite(server, rows=30)
    # No response cache: only the checkpoint may spare the repeated calls.
    suite.defaults.update(concurrency=CONCURRENCY, cache=False)
    process = subprocess.Popen(
        cli_command(*suite.args()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        suite.output_dir.mkdir(exist_ok=True)
        deadline = time.monotonic() + CLI_TIMEOUT
        while not suite.run_dirs():
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.02)
        checkpoint = suite.only_run_dir() / "checkpoint-base.jsonl"
        wait_for_lines(checkpoint, CHECKPOINTED_BEFORE_KILL, process)
        process.send_signal(signal.SIGKILL)
        process.wait(CLI_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(CLI_TIMEOUT)
        # Its workers shared its process group; the daemon leaves by itself when its parent dies.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    run_dir = suite.only_run_dir()
    assert manifest(run_dir)["status"] == "running", "a killed run must not look finished"
    done_before = checkpointed_rows(checkpoint)
    assert len(done_before) >= CHECKPOINTED_BEFORE_KILL
    assert len(done_before) < 30, "the run finished before the kill: nothing to resume"
    wait_until_idle(server)
    before = requests_per_row(server)

    result = run_cli(*suite.args("--resume", run_dir.name, "--json-summary", "-"))

    assert result.code == 0, result.output
    assert manifest(run_dir)["status"] == "complete"
    experiment = summary_json(result)["experiments"][0]
    assert experiment["resumed"] == len(done_before)
    assert experiment["answers"] == 30
    after = requests_per_row(server)
    for row in done_before:
        row_id = suite.row_ids[row]
        assert after[row_id] == before[row_id] == 1, f"{row_id} was asked again after resume"
    # Only the requests in flight at the kill (at most one per slot) may repeat.
    repeated = Counter({row_id: n - 1 for row_id, n in after.items() if n > 1})
    assert sum(repeated.values()) <= CONCURRENCY
    assert set(after) == set(suite.row_ids)
    data = read_results(run_dir / "base__results__results.csv")
    assert sorted(data["id"]) == list(suite.row_ids)
    assert (data["quality_outcome"] == "ok").all()


def wait_until_idle(server) -> None:  # type: ignore[no-untyped-def]
    """Requests the killed run had in flight still finish on the server; let them."""
    deadline = time.monotonic() + 10
    while server.stats.in_flight:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_tampered_checkpoint_refuses_resume(make_server, make_suite: MakeSuite) -> None:
    server = make_server()
    suite = make_suite(server, rows=10)
    suite.defaults.update(concurrency=1, budget={"max_rows": 4})
    stopped = run_cli(*suite.args())
    assert stopped.code == 1, stopped.output
    run_dir = suite.only_run_dir()
    checkpoint = run_dir / "checkpoint-base.jsonl"
    lines = checkpoint.read_text("utf-8").splitlines(keepends=True)
    assert lines, "the stopped run checkpointed nothing"
    tampered = len(lines)  # 1-based number of the last record
    wrapper = json.loads(lines[-1])
    record = json.loads(wrapper["record"])
    record["answers"][0][3] = '{"score": 5, "rationale": "edited after the fact"}'
    wrapper["record"] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    lines[-1] = json.dumps(wrapper) + "\n"
    checkpoint.write_text("".join(lines), "utf-8")
    requests = server.stats.request_count
    suite.defaults["budget"] = {"max_rows": 4}

    result = run_cli(*suite.args("--resume", run_dir.name))

    assert result.code == 3, result.output
    assert f"{checkpoint}:{tampered}" in result.stderr
    assert "does not verify" in result.stderr
    assert server.stats.request_count == requests
    assert manifest(run_dir)["status"] == "refused"


def test_resume_of_an_unknown_run_is_a_configuration_error(make_suite: MakeSuite) -> None:
    suite = make_suite(None, rows=5)

    result = run_cli(*suite.args("--resume", "20260101T000000Z-000000"))

    assert result.code == 2
    assert f"cannot resume: no run '20260101T000000Z-000000' in {suite.output_dir}" in result.stderr


def test_resume_with_other_settings_is_refused(make_suite: MakeSuite) -> None:
    suite = make_suite(None, rows=5)
    suite.defaults.update(concurrency=1, budget={"max_rows": 2})
    assert run_cli(*suite.args()).code == 1  # stopped by its budget: resumable
    run_dir = suite.only_run_dir()
    suite.settings["prompt_packs"]["rate"]["criteria"]["quality"] = "Rate {{ id }} differently"

    result = run_cli(*suite.args("--resume", run_dir.name))

    assert result.code == 2
    message = " ".join(result.stderr.split())
    assert (
        f"checkpoint {run_dir / 'checkpoint-base.jsonl'} belongs to different settings" in message
    )


def test_resume_run_id_cannot_leave_the_output_dir(make_suite: MakeSuite, tmp_path: Path) -> None:
    suite = make_suite(None, rows=5)
    assert run_cli(*suite.args()).code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    (elsewhere / "manifest.json").write_bytes((suite.only_run_dir() / "manifest.json").read_bytes())

    result = run_cli(*suite.args("--resume", "../../elsewhere"))

    assert result.code == 2
    assert sorted(p.name for p in elsewhere.iterdir()) == ["manifest.json"]


def test_a_complete_run_is_not_resumed(make_suite: MakeSuite) -> None:
    suite = make_suite(None, rows=5)
    first = run_cli(*suite.args())
    assert first.code == 0, first.output
    run_dir = suite.only_run_dir()

    result = run_cli(*suite.args("--resume", run_dir.name))

    assert result.code == 2
    assert f"cannot resume: run '{run_dir.name}' is already complete" in result.stderr
    assert manifest(run_dir)["status"] == "complete"
