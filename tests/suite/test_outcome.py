"""A run tells the truth: one status, the same in the JSON summary, the manifest, the audit log's
last event and the report banners, and the exit code that goes with it — through the real
command line (a subprocess) against the loopback endpoint answering errors on purpose."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from elspeth.sidecar import start_standalone_daemon
from tests.suite.conftest import (
    CliResult,
    MakeSuite,
    SuiteFiles,
    audit_events,
    manifest,
    read_results,
    run_cli_subprocess,
)
from tests.support.capabilities import missing_capabilities
from tests.support.openai_server import OpenAIServer, Reply

pytestmark = pytest.mark.integration

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs" / "json-summary.schema.json").read_text("utf-8")
)


def run(suite: SuiteFiles, *extra: str) -> tuple[CliResult, dict[str, Any]]:
    """The CLI as a subprocess with ``--json-summary -``: standard output must be that JSON
    alone, valid against the documented schema."""
    result = run_cli_subprocess(*suite.args("--json-summary", "-", *extra))
    summary: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(summary, SCHEMA)
    return result, summary


def status_everywhere(summary: dict[str, Any]) -> set[str]:
    """The status as the JSON summary, the manifest and the audit log's last event say it."""
    run_dir = Path(summary["run_dir"])
    last = audit_events(run_dir)[-1]
    assert last["event"] == "run_finished"
    return {summary["status"], manifest(run_dir)["status"], last["status"]}


def failing_first(server: OpenAIServer, failures: int, status: int = 400) -> None:
    """The first ``failures`` requests get ``status`` (400 is not retried), the rest answer."""
    server.script(*[Reply.error(status)] * failures)


def test_a_run_whose_every_call_failed_fails(make_server, make_suite: MakeSuite) -> None:
    server = make_server(error_rate=1.0, error_status=500)
    suite = make_suite(server, rows=6)
    suite.defaults.update(max_retries=0, max_error_rate=1.0)  # even a tolerance of every row

    result, summary = run(suite)

    assert result.code == 1, result.stderr
    assert status_everywhere(summary) == {"failed"}
    assert summary["exit_code"] == 1
    assert "6 of 6 rows (100.0%) have errors" in result.stderr
    assert "server_error in 6 answer(s) (e.g. row " in result.stderr
    experiment = summary["experiments"][0]
    assert (experiment["error_rows"], experiment["errors_by_reason"]) == (6, {"server_error": 6})
    assert summary["run_id"] == Path(summary["run_dir"]).name


def test_one_error_fails_a_run_by_default(make_server, make_suite: MakeSuite) -> None:
    server = make_server()
    suite = make_suite(server, rows=10)
    suite.defaults["concurrency"] = 1
    failing_first(server, 1)

    result, summary = run(suite)

    assert result.code == 1, result.stderr
    assert status_everywhere(summary) == {"failed"}
    assert "1 of 10 rows (10.0%) have errors: client_error in 1 answer(s)" in result.stderr
    assert "(max_error_rate is 0)" in result.stderr


@pytest.mark.parametrize(
    ("failures", "status", "code"),
    [(2, "complete_with_errors", 0), (3, "failed", 1)],
    ids=["at the tolerance", "one row above it"],
)
def test_errors_are_tolerated_up_to_max_error_rate(
    make_server, make_suite: MakeSuite, failures: int, status: str, code: int
) -> None:
    server = make_server()
    suite = make_suite(server, rows=10)
    suite.defaults.update(concurrency=1, max_error_rate=0.2)
    failing_first(server, failures)

    result, summary = run(suite)

    assert result.code == code, result.stderr
    assert status_everywhere(summary) == {status}
    assert summary["experiments"][0]["error_rows"] == failures
    results = read_results(Path(summary["run_dir"]) / "base__results__results.csv")
    assert len(results) == summary["experiments"][0]["rows"] == 10
    assert (results["quality_outcome"] == "error").sum() == failures


def test_an_experiment_overrides_the_suite_tolerance(make_server, make_suite: MakeSuite) -> None:
    server = make_server()
    suite = make_suite(server, rows=10)
    suite.defaults.update(concurrency=1, max_error_rate=0.5)
    suite.settings["experiments"][0]["max_error_rate"] = 0.0
    failing_first(server, 1)

    result, summary = run(suite)

    assert (result.code, summary["status"]) == (1, "failed"), result.stderr


def test_complete_with_errors_is_in_the_report_banners(make_server, make_suite: MakeSuite) -> None:
    server = make_server()
    suite = make_suite(server, rows=10)
    suite.defaults.update(concurrency=1, max_error_rate=0.5)
    suite.settings["sinks"]["summary_md"] = {"type": "markdown_report", "clearance": "OFFICIAL"}
    suite.settings["reports"] = ["summary_md"]
    failing_first(server, 1)

    result, summary = run(suite)

    assert result.code == 0, result.stderr
    report = Path(summary["outputs"][-1])
    lines = report.read_text("utf-8").splitlines()
    banner = "**Classification: OFFICIAL · Run status: complete_with_errors**"
    assert lines[0] == banner
    assert lines[-1] == banner


def test_a_template_error_names_the_field_the_template_and_the_columns(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = make_suite(server, rows=3)
    # Only a row can tell that a string has no such attribute: this passes validation.
    suite.settings["prompt_packs"]["rate"]["criteria"]["quality"] = "Rate {{ text.summary }}"

    result, summary = run(suite)

    assert result.code == 1, result.stderr
    assert summary["status"] == "failed"
    assert server.stats.request_count == 0
    message = " ".join(result.stderr.split())
    assert "prompt_render in 3 answer(s) (e.g. row 0, quality: template rate.criteria." in message
    assert "has no attribute 'summary'; the row's columns are: id, text" in message


def test_json_summary_alone_on_stdout_for_a_bad_settings_file(make_suite: MakeSuite) -> None:
    suite = make_suite(None, rows=3)
    suite.settings["experiments"][0]["concurency"] = 3

    result = run_cli_subprocess(*suite.args("--json-summary", "-"))

    summary = json.loads(result.stdout)
    jsonschema.validate(summary, SCHEMA)
    assert (result.code, summary["status"], summary["exit_code"]) == (2, "failed", 2)
    assert "concurency" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_summary_of_a_refused_plan_names_the_run(make_suite: MakeSuite) -> None:
    suite = make_suite(None, rows=3)
    suite.settings["sinks"]["results"]["clearance"] = "UNOFFICIAL"

    result, summary = run(suite)

    assert (result.code, summary["status"], summary["exit_code"]) == (3, "refused", 3)
    assert summary["run_id"] == Path(summary["run_dir"]).name
    assert status_everywhere(summary) == {"refused"}


@pytest.mark.parametrize("option", ["--output-dir", "--state-dir"])
def test_an_unusable_directory_is_one_line_and_exit_2(make_suite: MakeSuite, option: str) -> None:
    suite = make_suite(None, rows=3)
    blocker = suite.directory / "a-file"
    blocker.write_text("not a directory\n")
    directories = {"--output-dir": suite.output_dir, "--state-dir": suite.state_dir}
    directories[option] = blocker / "sub"

    result = run_cli_subprocess(
        "--settings", suite.write(), *(part for pair in directories.items() for part in pair)
    )

    assert result.code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("elspeth:")]
    assert len(lines) == 1, result.stderr
    assert str(blocker / "sub") in lines[0]
    assert "Not a directory" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_missing_session_key_beside_a_live_daemon_is_exit_2_naming_it(
    make_suite: MakeSuite, tmp_path: Path
) -> None:
    suite = make_suite(None, rows=3)
    missing = tmp_path / "no-such-session-key"
    with start_standalone_daemon(state_dir=tmp_path / "daemon-state") as daemon:
        suite.settings["sidecar"] = {
            "mode": "sidecar",
            "socket_path": str(daemon.socket_path),
            "session_key_path": str(missing),
            "ready_timeout_seconds": 1,
        }
        result = run_cli_subprocess(*suite.args())

    assert result.code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("elspeth:")]
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0]
    assert "does not exist" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.root
@pytest.mark.skipif(
    os.geteuid() != 0 or bool(missing_capabilities("CAP_SYS_ADMIN")),
    reason="mounting a small tmpfs as a full disk needs root with CAP_SYS_ADMIN (which root in "
    "a container's default capability set lacks)",
)
def test_a_full_disk_fails_the_run_with_one_line_naming_the_file(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        # The bundled sample suite writes more than 256 KiB: some write must hit ENOSPC.
        result = run_cli_subprocess(
            "--output-dir", disk / "out", "--state-dir", tmp_path / "state",
            "--json-summary", tmp_path / "summary.json",
        )  # fmt: skip
        (run_dir,) = (p for p in (disk / "out").iterdir() if not p.name.startswith("."))
        recorded = manifest(run_dir)["status"]
    finally:
        subprocess.run(["umount", str(disk)], check=True)

    assert result.code == 1, result.output
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("elspeth:")]
    assert lines[0].startswith(f"elspeth: run failed: I/O error on {run_dir}/"), lines
    assert lines[0].endswith("[ENOSPC] No space left on device")
    summary = json.loads((tmp_path / "summary.json").read_text("utf-8"))
    jsonschema.validate(summary, SCHEMA)
    assert (summary["status"], summary["exit_code"]) == ("failed", 1)
    # The manifest says so, or, when the disk could not take even that, stderr does.
    assert recorded == "failed" or (
        f"the manifest in {run_dir} still says running" in result.stderr
        and "this run is failed" in result.stderr
    )
