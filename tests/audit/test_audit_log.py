"""The audit log of a real run of the bundled sample suite: every line valid against the
committed JSON Schema, the event set closed, no sample data in it, and its hash chain checked
by ``elspeth audit verify`` (each kind of tampering found, naming the line)."""

from __future__ import annotations

import csv
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from elspeth.audit import (
    EVENT_TYPES,
    BudgetStop,
    EarlyStop,
    FrameGranted,
    JudgeDone,
    JudgeResult,
    ProxyRefused,
    Refusal,
    Resumed,
    audit_json_schema,
    chain_start,
)
from elspeth.suite._audit import AuditLog
from tests.suite.conftest import CliResult, run_cli

SCHEMA_PATH = Path(__file__).parents[2] / "docs" / "audit.schema.json"

NOT_REACHED = {
    Refusal.NAME: "the sample's clearance plan is allowed (tests/suite/test_clearance_refusal)",
    Resumed.NAME: "a fresh run; resuming is tests/suite/test_resume's",
    EarlyStop.NAME: "the sample has no early-stop plugin (tests/suite/test_budget_stops)",
    BudgetStop.NAME: "the sample sets no budget (tests/suite/test_budget_stops)",
    ProxyRefused.NAME: "built-in plugins make only allowed calls (tests/orchestrator/"
    "test_audit_events)",
    JudgeResult.NAME: "the sample has no judge (tests/suite/test_judges)",
    JudgeDone.NAME: "the sample has no judge (tests/suite/test_judges)",
}
"""Event types a sample run does not record, and where each is exercised instead."""


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sample")
    result = run_cli(
        "--output-dir", base / "out", "--state-dir", base / "state", "--head", "12",
    )  # fmt: skip
    assert result.code == 0, result.output
    (run_dir,) = (p for p in (base / "out").iterdir() if p.is_dir() and p.name[0] != ".")
    return run_dir


@pytest.fixture
def run_copy(sample_run: Path, tmp_path: Path) -> Path:
    """A copy of the sample run to tamper with."""
    copy = tmp_path / sample_run.name
    shutil.copytree(sample_run, copy)
    return copy


def _lines(run_dir: Path) -> list[bytes]:
    return (run_dir / "audit.jsonl").read_bytes().splitlines(keepends=True)


def _write(run_dir: Path, lines: list[bytes]) -> None:
    (run_dir / "audit.jsonl").write_bytes(b"".join(lines))


def _verify(run_dir: Path) -> CliResult:
    return run_cli("audit", "verify", run_dir)


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads(SCHEMA_PATH.read_text("utf-8"))
    assert committed == audit_json_schema(), (
        "regenerate docs/audit.schema.json: python -c 'import json; from elspeth.audit import "
        "audit_json_schema; print(json.dumps(audit_json_schema(), indent=2))'"
    )
    jsonschema.Draft202012Validator.check_schema(committed)


def test_every_line_of_a_sample_run_is_valid_and_every_event_type_is_accounted_for(
    sample_run: Path,
) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text("utf-8")))
    events = [json.loads(line) for line in _lines(sample_run)]
    for number, event in enumerate(events, start=1):
        errors = [error.message for error in validator.iter_errors(event)]
        assert not errors, f"line {number} ({event.get('event')}): {errors}"
    seen = {event["event"] for event in events}
    declared = {event_type.NAME for event_type in EVENT_TYPES}
    assert seen <= declared
    assert declared - seen == set(NOT_REACHED), "update NOT_REACHED, saying why"
    assert events[0]["prev"] == chain_start(sample_run.name)
    assert events[-1]["event"] == "run_finished"


def test_a_sample_run_records_worker_views_and_derivations_with_audit_ids(
    sample_run: Path,
) -> None:
    events = [json.loads(line) for line in _lines(sample_run)]
    views = [e for e in events if e["event"] == "worker_view_verified"]
    derived = [e for e in events if e["event"] == "frame_derived"]
    assert views
    assert derived
    assert all(isinstance(e["audit_id"], int) and e["audit_id"] > 0 for e in views + derived)
    granted = {e["audit_id"] for e in events if e["event"] == "frame_granted"}
    assert len(granted) == sum(e["event"] == "frame_granted" for e in events)  # distinct ids


def test_a_sample_runs_audit_log_holds_none_of_the_sample_datas_text(sample_run: Path) -> None:
    sample = resources.files("elspeth") / "_data" / "service_requests.csv"
    with sample.open("r", encoding="utf-8") as handle:
        cells = {value for row in csv.DictReader(handle) for value in row.values()}
    text = (sample_run / "audit.jsonl").read_text("utf-8")
    leaves: set[str] = set()
    for line in text.splitlines():
        _strings(json.loads(line), leaves)
    assert not cells & leaves
    # Longer values (messages, ids, dates) may not appear even inside another string.
    assert [cell for cell in cells if len(cell) >= 8 and cell in text] == []


def _strings(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        found.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _strings(item, found)


def test_an_untouched_run_verifies(sample_run: Path) -> None:
    result = _verify(sample_run)

    assert result.code == 0, result.output
    lines = len(_lines(sample_run))
    assert f"lines: {lines}" in result.stdout
    recorded = json.loads((sample_run / "manifest.json").read_text("utf-8"))["audit"]
    assert recorded["lines"] == lines


def test_a_removed_line_is_found(run_copy: Path) -> None:
    lines = _lines(run_copy)
    del lines[4]
    _write(run_copy, lines)

    result = _verify(run_copy)

    assert result.code == 1
    assert "audit.jsonl line 5: prev is not the hash of the line before" in result.stderr


def test_a_changed_line_is_found(run_copy: Path) -> None:
    lines = _lines(run_copy)
    lines[3] = lines[3].replace(b'"event":', b'"event": ', 1)
    _write(run_copy, lines)

    result = _verify(run_copy)

    assert result.code == 1
    assert "audit.jsonl line 5: prev is not the hash" in result.stderr
    assert "line 4:" not in result.stderr  # the changed line itself still links back


def test_two_swapped_lines_are_found(run_copy: Path) -> None:
    lines = _lines(run_copy)
    lines[2], lines[3] = lines[3], lines[2]
    _write(run_copy, lines)

    result = _verify(run_copy)

    assert result.code == 1
    for number in (3, 4, 5):
        assert f"audit.jsonl line {number}: prev is not the hash" in result.stderr


def test_a_removed_last_line_is_found_by_the_manifest(run_copy: Path) -> None:
    _write(run_copy, _lines(run_copy)[:-1])

    result = _verify(run_copy)

    assert result.code == 1
    assert "manifest.json records" in result.stderr
    assert "lines were removed from or added to its end" in result.stderr


def test_a_truncated_last_line_is_found(run_copy: Path) -> None:
    lines = _lines(run_copy)
    lines[-1] = lines[-1][:20]
    _write(run_copy, lines)

    result = _verify(run_copy)

    assert result.code == 1
    last = len(lines)
    assert f"audit.jsonl line {last}: not valid JSON" in result.stderr
    assert f"audit.jsonl line {last}: incomplete (no newline)" in result.stderr


def test_a_changed_manifest_hash_is_found(run_copy: Path) -> None:
    path = run_copy / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    manifest["audit"]["last_hash"] = "0" * 64
    path.write_text(json.dumps(manifest), "utf-8")

    result = _verify(run_copy)

    assert result.code == 1
    assert "manifest.json records a last audit hash that is not the hash" in result.stderr


def test_a_missing_run_directory_is_bad_input(tmp_path: Path) -> None:
    missing = _verify(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    not_a_run = _verify(tmp_path / "empty")

    assert (missing.code, not_a_run.code) == (2, 2)
    assert "not a directory" in missing.stderr
    assert "manifest.json: missing" in not_a_run.stderr


def test_a_reopened_log_goes_on_with_the_chain_and_a_torn_line_shows(tmp_path: Path) -> None:
    path, run_id = tmp_path / "audit.jsonl", "20261203T000000Z-0a0b0c"
    first = AuditLog(path, run_id)
    first.record(FrameGranted(chunk=0, rows=1, level="OFFICIAL", audit_id=1))
    first.close()
    with path.open("ab") as handle:
        handle.write(b'{"ts":1,"run"')  # a line torn by kill -9
    second = AuditLog(path, run_id)
    second.record(FrameGranted(chunk=1, rows=1, level="OFFICIAL", audit_id=2))
    second.close()

    from elspeth.audit import check_chain

    checked = check_chain(path.read_bytes(), run_id)
    assert checked.head == second.head
    assert checked.head.lines == 3
    assert checked.problems == ("audit.jsonl line 2: not valid JSON: changed or cut short",)
