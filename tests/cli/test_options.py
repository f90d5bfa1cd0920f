"""The command's options: --help, --schema, --validate-only, --head, --json-summary, and the
bundled sample suite run with no --settings at all."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.suite.conftest import (
    SuiteFiles,
    manifest,
    read_results,
    run_cli,
    run_cli_subprocess,
    summary_json,
)


@pytest.mark.parametrize("command", [["--help"], ["run", "--help"], ["validate", "--help"]])
def test_help_explains_the_exit_codes(command: list[str]) -> None:
    result = run_cli(*command)

    assert result.code == 0
    assert "exit codes:" in result.stdout
    for code, meaning in [
        ("0", "complete: every row answered, or its errors within max_error_rate"),
        ("1", "failed or stopped"),
        ("2", "configuration error"),
        ("3", "security refusal"),
        ("130", "interrupted (SIGINT or SIGTERM)"),
    ]:
        assert f"  {code:<3}  {meaning}" in result.stdout


def test_run_help_names_every_option_and_status() -> None:
    result = run_cli("--help")

    for option in ("--settings", "--validate-only", "--resume", "--json-summary", "--head"):
        assert option in result.stdout
    for status in ("complete", "complete_with_errors", "failed", "stopped", "refused"):
        assert status in result.stdout


def test_version_names_the_installed_distribution() -> None:
    from importlib.metadata import version

    result = run_cli_subprocess("--version")

    assert (result.code, result.stdout) == (0, f"elspeth {version('elspeth')}\n")


@pytest.mark.integration
def test_run_and_validate_subcommands_do_what_the_flags_do(suite: SuiteFiles) -> None:
    checked = run_cli_subprocess("validate", suite.write())
    ran = run_cli_subprocess("run", *suite.args("--head", "2", "--json-summary", "-"))

    assert checked.code == 0, checked.output
    assert f"settings valid: {suite.path}" in checked.stdout
    assert ran.code == 0, ran.output
    assert json.loads(ran.stdout)["status"] == "complete"


def test_a_usage_error_is_exit_2_with_the_usage(tmp_path: Path) -> None:
    result = run_cli_subprocess("validate")

    assert result.code == 2
    assert "usage: elspeth validate" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_is_a_valid_json_schema_the_sample_suite_satisfies() -> None:
    result = run_cli("--schema")

    assert result.code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    sample = resources.files("elspeth") / "_data" / "sample_suite.yaml"
    jsonschema.validate(yaml.safe_load(sample.read_text("utf-8")), schema)
    with pytest.raises(jsonschema.ValidationError, match="concurency"):
        jsonschema.validate({**yaml.safe_load(sample.read_text("utf-8")), "concurency": 3}, schema)


@pytest.mark.integration
def test_validate_only_prints_the_plan_and_reads_no_data(suite: SuiteFiles) -> None:
    # Undecodable: a run would stop on these bytes (see the last assertion).
    (suite.directory / "data.csv").write_bytes(b"id,text\nR000,\xff\xfe broken\n")

    result = run_cli(*suite.args("--validate-only"))

    assert result.code == 0, result.output
    assert "Clearance plan (checked before any data is read)" in result.stdout
    for component in ("datasource", "base/llm", "base/sink:results"):
        assert component in result.stdout
    assert f"settings valid: {suite.path}" in result.stdout
    assert not suite.output_dir.exists(), "validate-only created a run directory"
    ran = run_cli(*suite.args())
    assert ran.code == 1
    assert "is not valid utf-8" in ran.stderr


@pytest.mark.integration
def test_head_processes_only_the_first_rows(suite: SuiteFiles) -> None:
    result = run_cli(*suite.args("--head", "7", "--json-summary", "-"))

    assert result.code == 0, result.output
    summary = summary_json(result)
    assert summary["status"] == "complete"
    assert summary["experiments"][0]["rows"] == 7
    assert summary["experiments"][0]["answers"] == 7
    data = read_results(Path(summary["run_dir"]) / "base__results__results.csv")
    assert list(data["id"]) == list(suite.row_ids[:7])


@pytest.mark.integration
def test_json_summary_to_a_file(suite: SuiteFiles) -> None:
    target = suite.directory / "summary.json"

    result = run_cli(*suite.args("--json-summary", target))

    assert result.code == 0, result.output
    summary = json.loads(target.read_text("utf-8"))
    assert summary["status"] == "complete"
    assert summary["run_id"] == suite.only_run_dir().name
    assert summary["experiments"][0]["answers"] == 20


@pytest.mark.integration
def test_sample_suite_runs_without_settings(tmp_path: Path) -> None:
    output_dir = tmp_path / "out"

    result = run_cli(
        "--output-dir", output_dir, "--state-dir", tmp_path / "state", "--head", "40",
        "--json-summary", "-",
    )  # fmt: skip

    assert result.code == 0, result.output
    summary = summary_json(result)
    assert summary["status"] == "complete"
    run_dir = Path(summary["run_dir"])
    assert manifest(run_dir)["status"] == "complete"
    experiments = ("baseline", "terse_prompt", "second_opinion")
    assert [e["name"] for e in summary["experiments"]] == list(experiments)
    for experiment in experiments:
        results = read_results(run_dir / f"{experiment}__results__results_csv.csv")
        assert len(results) == 40
        assert (results["urgency_outcome"] == "ok").all()
        assert (run_dir / f"{experiment}__score_stats__results_parquet.parquet").is_file()
    assert sorted(summary["comparisons"]) == [
        "compare__versus_baseline__second_opinion__results_csv.csv",
        "compare__versus_baseline__terse_prompt__results_csv.csv",
    ]
    for name in summary["comparisons"]:
        assert (run_dir / name).read_text("utf-8").startswith("# classification: OFFICIAL\n")
