"""Validation before anything is read: ``--validate-only`` (and a run, before it reads) checks
every file, option, template, price and the standalone ceiling, and reports every problem at
once as ``file:line:column: key: what is wrong`` (exit 2; 3 where the plan is refused).

Each test fails without the checks it names: before them, validation looked at none of these
(or found them only after data was read, or a model called)."""

from __future__ import annotations

import datetime as dt
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_bad_settings import flat, line_of, place
from tests.suite.conftest import (
    KEY_VARIABLE,
    SECRET_KEY,
    SuiteFiles,
    audit_events,
    build_suite,
    read_results,
    run_cli,
    run_cli_subprocess,
    summary_json,
)
from tests.support.fixtures import MakeServer

COLOUR_MISSING = (
    "experiment base: template rate.criteria.quality.user uses field 'colour', "
    "which is not a datasource column; the columns "
)
QUOTE_IT = "YAML reads the unquoted 2024-06-01 as a date, not text; quote it: api_version: "


def validate(suite: SuiteFiles) -> tuple[int, str]:
    result = run_cli(*suite.args("--validate-only"))
    return result.code, flat(result.stderr)


def problem(suite: SuiteFiles, where: str, key: str, message: str) -> str:
    return f"{suite.path}:{where}: {key}: {message}"


# --- referenced files ------------------------------------------------------------------------


def test_missing_datasource_file_is_found_by_validation(suite: SuiteFiles) -> None:
    suite.settings["datasource"]["path"] = "absent.csv"

    code, message = validate(suite)

    absent = suite.directory / "absent.csv"
    assert code == 2
    where = place(suite, "path: absent.csv", at="absent.csv")
    assert problem(suite, where, "datasource.path", f"{absent}: no such file") in message
    assert not suite.output_dir.exists()


def test_a_directory_is_not_a_datasource_file(suite: SuiteFiles) -> None:
    (suite.directory / "folder.csv").mkdir()
    suite.settings["datasource"]["path"] = "folder.csv"

    code, message = validate(suite)

    assert code == 2
    assert f"datasource.path: {suite.directory / 'folder.csv'}: is a directory" in message


def test_an_empty_datasource_file_is_refused(suite: SuiteFiles) -> None:
    (suite.directory / "data.csv").write_bytes(b"")

    code, message = validate(suite)

    assert code == 2
    assert f"datasource.path: {suite.directory / 'data.csv'}: is empty (0 bytes)" in message


def test_relative_paths_resolve_against_the_settings_directory_not_the_cwd(
    suite: SuiteFiles, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "moved.csv").write_bytes((suite.directory / "data.csv").read_bytes())
    suite.settings["datasource"]["path"] = "moved.csv"

    # The file is in the working directory, not beside the settings: refused.
    refused = run_cli_subprocess(*suite.args("--validate-only"), cwd=elsewhere)
    assert refused.code == 2, refused.output
    assert f"datasource.path: {suite.directory / 'moved.csv'}: no such file" in flat(refused.stderr)
    # Beside the settings, and run from a directory without it: found.
    (elsewhere / "moved.csv").rename(suite.directory / "moved.csv")
    found = run_cli_subprocess(*suite.args("--validate-only"), cwd=elsewhere)
    assert found.code == 0, found.output


def test_sqlite_url_to_a_missing_file_is_an_error_and_never_created(
    suite: SuiteFiles, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    suite.settings["datasource"] = {
        "type": "sql",
        "url": "sqlite:///absent.db",
        "table": "requests",
        "classification": "OFFICIAL",
        "clearance": "OFFICIAL",
    }

    validated = run_cli_subprocess(*suite.args("--validate-only"), cwd=cwd)
    ran = run_cli_subprocess(*suite.args(), cwd=cwd)

    for result in (validated, ran):
        assert result.code == 2, result.output
        assert (
            f"datasource.url: SQLite database {suite.directory / 'absent.db'}: no such file; "
            "check 'url'"
        ) in flat(result.stderr)
    assert not (suite.directory / "absent.db").exists()
    assert not (cwd / "absent.db").exists()
    # The same relative URL, once the database is beside the settings, is read from there.
    with sqlite3.connect(suite.directory / "absent.db") as connection:
        connection.execute("create table requests (id text, text text)")
        connection.execute("insert into requests values ('R000', 'a bin')")
    assert run_cli_subprocess(*suite.args("--validate-only"), cwd=cwd).code == 0


# --- the standalone ceiling ------------------------------------------------------------------


def test_standalone_mode_above_its_ceiling_is_refused_before_anything_is_read(
    suite: SuiteFiles,
) -> None:
    settings = suite.settings
    settings["datasource"].update(classification="SECRET", clearance="SECRET")
    settings["models"]["loopback"]["clearance"] = "SECRET"
    settings["sinks"]["results"]["clearance"] = "SECRET"
    # Bytes no UTF-8 reader accepts: had the datasource been read, the run would have failed
    # on them (exit 1), not been refused.
    (suite.directory / "data.csv").write_bytes(b"id,text\nR000,\xff\xfe broken\n")

    validated = run_cli(*suite.args("--validate-only"))
    ran = run_cli(*suite.args())

    where = place(suite, "classification: SECRET", at="classification")
    for result in (validated, ran):
        message = flat(result.stderr)
        assert result.code == 3, result.output
        assert "standalone mode refuses levels above OFFICIAL_SENSITIVE" in message
        assert f"{suite.path}:{where}: datasource.classification: " in message
        assert "components handling SECRET data: base/llm, base/sink:results" in message
    events = [event["event"] for event in audit_events(suite.only_run_dir())]
    assert "refusal" in events
    assert "frame_granted" not in events


# --- model options ---------------------------------------------------------------------------


def test_unknown_model_option_is_an_error_with_did_you_mean(suite: SuiteFiles) -> None:
    suite.settings["models"]["loopback"]["sead"] = 7

    code, message = validate(suite)

    assert code == 2
    where = place(suite, "sead: 7")
    assert (
        problem(suite, where, "models.loopback.sead", "unknown key; did you mean 'seed'?")
        in message
    )


def test_unquoted_api_version_is_told_to_quote_it(suite: SuiteFiles) -> None:
    suite.settings["models"]["loopback"] = {
        "type": "azure_openai",
        "clearance": "OFFICIAL",
        "endpoint": "https://example.invalid",
        "deployment": "scorer",
        "api_version": dt.date(2024, 6, 1),  # written unquoted: YAML reads it as a date
        "api_key_env": KEY_VARIABLE,
    }
    suite.write()
    assert "api_version: 2024-06-01" in suite.path.read_text("utf-8")

    code, message = validate(suite)

    assert code == 2
    where = place(suite, "api_version: 2024-06-01", at="2024")
    assert (
        problem(
            suite,
            where,
            "models.loopback.api_version",
            QUOTE_IT + '"2024-06-01"',
        )
        in message
    )


# --- templates -------------------------------------------------------------------------------


def test_template_field_missing_from_declared_columns_names_the_columns(
    suite: SuiteFiles,
) -> None:
    suite.settings["prompt_packs"]["rate"]["criteria"]["quality"] = "Rate {{ colour }}"

    code, message = validate(suite)

    assert code == 2
    assert (
        problem(
            suite,
            place(suite, "quality: Rate"),
            "prompt_packs.rate.criteria.quality",
            COLOUR_MISSING + "the datasource declares: id, text",
        )
        in message
    )


def test_header_is_checked_against_templates_before_any_model_call(
    make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, SECRET_KEY)
    server = make_server()
    suite = build_suite(tmp_path / "suite", server, rows=5)
    del suite.settings["datasource"]["columns"]
    suite.settings["prompt_packs"]["rate"]["criteria"]["quality"] = "Rate {{ id }}: {{ colour }}"

    result = run_cli(*suite.args())

    assert result.code == 2, result.output
    assert problem(
        suite,
        place(suite, "quality:"),
        "prompt_packs.rate.criteria.quality",
        COLOUR_MISSING + "the data's header has: id, text",
    ) in flat(result.stderr)
    assert server.stats.request_count == 0
    events = [event["event"] for event in audit_events(suite.only_run_dir())]
    assert "llm_result" not in events


# --- prices ----------------------------------------------------------------------------------


def test_pricing_entry_that_matches_no_model_is_an_error(suite: SuiteFiles) -> None:
    suite.settings["pricing"] = {"mock-scorr": {"prompt_per_1k": 1, "completion_per_1k": 2}}

    code, message = validate(suite)

    assert code == 2
    assert (
        problem(
            suite,
            place(suite, "mock-scorr:"),
            "pricing.mock-scorr",
            "matches no model: no model is named 'mock-scorr' (models are named mock-scorer); "
            "did you mean 'mock-scorer'?",
        )
        in message
    )


def test_model_without_a_price_warns_and_its_cost_is_unknown(suite: SuiteFiles) -> None:
    warning = (
        f"{suite.path}:{{where}}: models.loopback: no price for model 'mock-scorer' under "
        "pricing: its cost is reported as unknown"
    )

    validated = run_cli_subprocess(*suite.args("--validate-only"))
    ran = run_cli_subprocess(*suite.args("--json-summary", "-"))

    where = place(suite, "  loopback:")
    for result in (validated, ran):
        assert result.code == 0, result.output
        assert warning.format(where=where) in flat(result.stderr)
    (experiment,) = summary_json(ran)["experiments"]
    assert experiment["answers"] == 20
    assert experiment["cost"] is None, "a model with no price cost 'unknown', not 0"
    results = read_results(suite.only_run_dir() / "base__results__results.csv")
    assert all(math.isnan(cost) for cost in results["quality_cost"])
    costs = [e["cost"] for e in audit_events(suite.only_run_dir()) if e["event"] == "llm_result"]
    assert costs == [None] * 20


# --- every problem at once -------------------------------------------------------------------


def test_several_problems_are_reported_together_with_line_and_column(suite: SuiteFiles) -> None:
    settings: dict[str, Any] = suite.settings
    settings["datasource"]["path"] = "absent.csv"
    settings["defaults"]["concurency"] = 3
    settings["defaults"]["max_retries"] = "often"
    settings["models"]["loopback"]["latency"] = True

    code, message = validate(suite)

    assert code == 2
    assert "4 problem(s) in the settings" in message
    expected = [
        ("path: absent.csv", "absent.csv", "datasource.path", "no such file"),
        ("latency: true", "true", "models.loopback.latency", "must be a number, not true"),
        ("concurency: 3", None, "defaults.concurency", "unknown key; did you mean 'concurrency'?"),
        ("max_retries: often", "often", "defaults.max_retries", "Input should be a valid integer"),
    ]
    for written, at, key, text in expected:
        assert re.search(
            re.escape(f"{suite.path}:{place(suite, written, at)}: {key}: ")
            + r"[^\n]*"
            + re.escape(text),
            message,
        ), (key, message)
    # Listed in the order of the file.
    lines = [line_of(suite, written) for written, *_ in expected]
    positions = [message.index(f"{suite.path}:{place(suite, w, a)}:") for w, a, *_ in expected]
    assert [p for _, p in sorted(zip(lines, positions, strict=True))] == sorted(positions)


# --- what validation starts ------------------------------------------------------------------


def test_validation_starts_no_daemon_and_a_worker_only_for_plugins(
    suite: SuiteFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import elspeth.suite._authority as authority

    def no_daemon(**_: object) -> None:
        raise AssertionError("validation started the standalone daemon")

    monkeypatch.setattr(authority, "start_standalone_daemon", no_daemon)
    from elspeth.config import load_suite
    from elspeth.suite import RunOptions, SuiteRunner

    options = RunOptions(output_dir=suite.output_dir, state_dir=suite.state_dir)
    plain = SuiteRunner(load_suite(suite.write()), options).validate()
    assert plain.started == ()
    assert plain.started_line == "started: no worker; no daemon"
    suite.settings["plugins"] = {
        "check": {
            "plugin": "regex_validator",
            "clearance": "OFFICIAL",
            "params": {"source": "quality_response", "pattern": "score"},
        }
    }
    suite.settings["defaults"]["row_plugins"] = ["check"]
    with_plugins = SuiteRunner(load_suite(suite.write()), options).validate()
    assert with_plugins.started_line == (
        "started: 1 catalog worker (to check plugin parameters); no daemon"
    )
    assert not suite.output_dir.exists()
    # The command line logs the same line.
    result = run_cli_subprocess(*suite.args("--validate-only"))
    assert result.code == 0, result.output
    assert "started: 1 catalog worker (to check plugin parameters); no daemon" in result.stderr
