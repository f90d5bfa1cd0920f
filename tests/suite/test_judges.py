"""Model-graded judges end to end: the real CLI, the standalone daemon, real workers, the
generation model a mock with canned answers, the judge a real HTTP model (the loopback server)
whose grades each test chooses per row. Malformed grades are ERRORs with the reason (never a
0), judge calls are accounted apart, and a judge cleared below the data is refused before any
row is read or any request sent."""

from __future__ import annotations

import csv
import re
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from tests.suite.conftest import (
    MODEL_NAME,
    MakeSuite,
    SuiteFiles,
    audit_events,
    read_results,
    run_cli,
    summary_json,
)
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration

ROWS = 8
GRADE_FOR = re.compile(r"grade request (R\d{3})\b")


def judged_suite(make_suite: MakeSuite, server: OpenAIServer, **judge: Any) -> SuiteFiles:
    """Answers from a mock with canned replies, a reference column, and judge ``grader`` at
    the loopback server (cleared OFFICIAL, like the data), for ``ROWS`` rows."""
    suite = make_suite(server, rows=ROWS)
    with (suite.directory / "data.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "expected"])
        for number in range(ROWS):
            writer.writerow([f"R{number:03d}", f"What is {number} plus one?", str(number + 1)])
    settings = suite.settings
    settings["datasource"]["columns"] = {"id": "string", "question": "string", "expected": "string"}
    settings["datasource"]["target"] = "expected"
    settings["models"]["answerer"] = {
        "type": "mock",
        "clearance": "OFFICIAL",
        "replies": ["It is one more than the number."],
    }
    settings["prompt_packs"] = {"qa": {"answer": "Answer {{ id }}: {{ question }}"}}
    settings["judges"] = {
        "grader": {
            "model": "loopback",
            "rubric": "Please grade request {{ id }}. Reference: {{ reference }}. "
            "Answer: {{ answer }}. End with GRADE: CORRECT, PARTIAL or INCORRECT.",
            **judge,
        }
    }
    settings["defaults"].update(
        model="answerer", prompt_pack="qa", judges=["grader"], max_error_rate=0.5
    )
    return suite


def grades(by_row: dict[str, str], default: str) -> Any:
    """A responder: the judge's reply for the row its prompt names."""

    def respond(prompt: str) -> str:
        found = GRADE_FOR.search(prompt)
        assert found is not None, f"a judge request that names no row: {prompt!r}"
        return by_row.get(found.group(1), default)

    return respond


def results(suite: SuiteFiles) -> pd.DataFrame:
    return read_results(suite.only_run_dir() / "base__results__results.csv").set_index("id")


def test_judge_grades_each_answer_and_a_malformed_grade_is_an_error_with_its_reason(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.respond_with(
        grades(
            {
                "R000": "I think the answer is fine.",  # no GRADE line
                "R001": "Close enough.\nGRADE: MAYBE",  # not a label
                "R002": "GRADE: CORRECT\nActually no.\nGRADE: INCORRECT",  # two grades
                "R003": "The answer misses the number.\nGRADE: incorrect",
                "R004": "Only partly.\n**GRADE: PARTIAL**",
            },
            default="The answer says the same as the reference.\nGRADE: CORRECT",
        )
    )
    suite = judged_suite(make_suite, server)
    suite.settings["pricing"] = {MODEL_NAME: {"prompt_per_1k": "1", "completion_per_1k": "2"}}

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    summary = summary_json(result)
    assert summary["status"] == "complete_with_errors"
    assert server.stats.request_count == ROWS, "one judge call per row; generation is the mock"
    data = results(suite)
    assert list(data["grader_outcome"]) == ["error"] * 3 + ["fail", "fail"] + ["pass"] * 3
    for row in ("R000", "R001", "R002"):
        assert pd.isna(data.loc[row, "grader_value"]), "a malformed grade is never a number"
        assert pd.isna(data.loc[row, "grader_grade"])
    assert "no 'GRADE:' line" in data.loc["R000", "grader_explanation"]
    assert "not one of CORRECT, PARTIAL, INCORRECT" in data.loc["R001", "grader_explanation"]
    assert "2 different grades" in data.loc["R002", "grader_explanation"]
    assert data.loc["R000", "grader_reply"] == "I think the answer is fine."
    assert (data.loc["R003", "grader_grade"], data.loc["R003", "grader_value"]) == (
        "INCORRECT",
        0.0,
    )
    assert (data.loc["R004", "grader_grade"], data.loc["R004", "grader_value"]) == ("PARTIAL", 0.5)
    assert data.loc["R005", "grader_explanation"] == "The answer says the same as the reference."
    # The rubric saw the reference and the answer; the prompt did not see the reference.
    judge_prompt = server.stats.requests[0].body["messages"][-1]["content"]
    assert "Answer: It is one more than the number." in judge_prompt
    assert re.search(r"Reference: \d", judge_prompt)

    experiment = summary["experiments"][0]
    judge = experiment["judges"]["grader"]
    assert (judge["calls"], judge["passed"], judge["failed"], judge["malformed"]) == (8, 3, 2, 3)
    assert Decimal(judge["cost"]) > 0
    assert experiment["cost"] is None, "generation (the unpriced mock) stays apart"
    assert experiment["errors_by_reason"] == {"judge_malformed_grade": 3}
    assert experiment["error_rows"] == 3

    events = audit_events(suite.only_run_dir())
    judged = [e for e in events if e["event"] == "judge_result"]
    assert sorted(e["row"] for e in judged) == list(range(ROWS))
    assert {e["grade"] for e in judged} == {"pass", "fail", "error"}
    assert all("fine" not in (e["grade_error"] or "") for e in judged), "no reply text in audit"
    (done,) = [e for e in events if e["event"] == "judge_done"]
    assert (done["judge"], done["calls"], done["malformed"]) == ("grader", 8, 3)
    checked = [e for e in events if e["event"] == "seal_verified"]
    assert {e["component"] for e in checked} == {"llm", "base/judge:grader"}


def test_malformed_grades_above_the_error_tolerance_fail_the_run(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.respond_with(grades({}, default="No grade here."))
    suite = judged_suite(make_suite, server)
    suite.defaults["max_error_rate"] = 0.0

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 1, result.output
    summary = summary_json(result)
    assert summary["status"] == "failed"
    assert "judge_malformed_grade" in summary["reason"]


def test_numeric_and_json_grades_are_read_on_their_declared_scale(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.respond_with(
        grades(
            {
                "R000": '{"grade": 4, "explanation": "good"}',
                "R001": '```json\n{"grade": 2, "explanation": "weak"}\n```',
                "R002": '{"grade": 9, "explanation": "off the scale"}',
                "R003": "not json at all",
            },
            default='{"grade": 5, "explanation": "exact"}',
        )
    )
    suite = judged_suite(make_suite, server, grade={"format": "json", "min": 1, "max": 5})

    result = run_cli(*suite.args())

    assert result.code == 0, result.output
    data = results(suite)
    assert list(data["grader_value"].iloc[:2]) == [4.0, 2.0]
    assert list(data["grader_outcome"].iloc[:4]) == ["pass", "fail", "error", "error"]
    assert "outside the scale" in data.loc["R002", "grader_explanation"]
    assert "not a JSON object" in data.loc["R003", "grader_explanation"]
    assert data.loc["R000", "grader_explanation"] == "good"


def test_a_judge_cleared_below_the_data_is_refused_before_any_request(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = judged_suite(make_suite, server)
    suite.settings["models"]["loopback"]["clearance"] = "UNOFFICIAL"

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 3, result.output
    assert summary_json(result)["status"] == "refused"
    assert "base/judge:grader" in result.output
    assert server.stats.request_count == 0
    events = audit_events(suite.only_run_dir())
    assert not [e for e in events if e["event"] in ("frame_granted", "llm_result")]


def test_the_judge_budget_stops_the_run_and_ungraded_rows_say_so(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.respond_with(grades({}, default="Fine.\nGRADE: CORRECT"))
    suite = judged_suite(make_suite, server, budget={"max_cost": "0.000001"})
    suite.settings["pricing"] = {MODEL_NAME: {"prompt_per_1k": "1", "completion_per_1k": "1"}}
    suite.defaults["concurrency"] = 1

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 1, result.output
    summary = summary_json(result)
    assert summary["status"] == "stopped"
    experiment = summary["experiments"][0]
    assert experiment["stopped_by"] == "judge budget"
    judge = experiment["judges"]["grader"]
    assert judge["partial"] is True
    assert judge["calls"] == 1, "the first answer's cost reached the budget"
    assert judge["ungraded"] == ROWS - 1
    data = results(suite)
    assert (data["grader_outcome"].iloc[1:] == "error").all()
    assert data["grader_explanation"].iloc[1].startswith("not graded: ")


def test_a_rubric_field_the_data_lacks_is_a_settings_error_naming_the_rubric(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = judged_suite(make_suite, server)
    suite.settings["judges"]["grader"]["rubric"] = "Grade {{ answer }} against {{ refrence }}"

    result = run_cli("validate", suite.write())

    assert result.code == 2, result.output
    assert "judges.grader.rubric" in result.output
    assert "'refrence'" in result.output


def test_a_judge_of_a_column_the_experiment_does_not_produce_is_a_settings_error(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = judged_suite(make_suite, server, answer="summary_response")

    result = run_cli("validate", suite.write())

    assert result.code == 2, result.output
    assert "judge grader grades column 'summary_response'" in result.output
    assert "set judges.grader.answer" in result.output
    assert server.stats.request_count == 0


def test_the_graded_example_suite_runs_with_the_mock_model(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "suite-graded.yaml"
    out, state = tmp_path / "out", tmp_path / "state"

    result = run_cli(
        "--settings", example, "--output-dir", out, "--state-dir", state, "--head", "20",
        "--json-summary", "-",
    )  # fmt: skip

    assert result.code == 0, result.output
    summary = summary_json(result)
    assert summary["status"] == "complete"
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    data = read_results(run_dir / "baseline__results__results_csv.csv")
    assert set(data["urgency_judge_outcome"]) <= {"pass", "fail"}
    assert set(data["exact_outcome"]) <= {"pass", "fail"}
    accuracy = read_results(run_dir / "baseline__accuracy__results_csv.csv")
    assert list(accuracy["criterion"]) == ["exact", "choice", "urgency_judge"]
    assert (accuracy["pass_rate_ci_low"] <= accuracy["pass_rate"]).all()
    assert summary["experiments"][0]["judges"]["urgency_judge"]["calls"] == 20
    page = (run_dir / "report__report_html.html").read_text("utf-8")
    assert "graded answers" in page
    markdown = (run_dir / "report__report_markdown.md").read_text("utf-8").splitlines()
    graded_at = markdown.index("## Graded answers")
    header = markdown[markdown.index("### baseline", graded_at) + 2]
    assert header.startswith("| \\_row | urgency | answer\\_response | urgency\\_judge\\_grade |")
    assert "| exact\\_explanation |" in header
    book = openpyxl.load_workbook(run_dir / "report__workbook.xlsx", read_only=True)
    graded = list(book["graded answers"].iter_rows(values_only=True))
    assert graded[1][:4] == ("experiment", "_row", "urgency", "answer_response")
    assert {row[0] for row in graded[2:]} == {"baseline", "terse"}
    assert len(graded) == 2 + 2 * 20  # banner, header, 20 rows of each experiment
    pairwise = read_results(run_dir / "compare__pairwise-preference__terse__results_csv.csv")
    assert pairwise.iloc[0]["pairs"] == 20
    assert "pairwise:preference: terse against baseline" in page


PAIR_FOR = re.compile(r"pairwise request (R\d{3}) A: (.*) B: (.*)$", re.DOTALL)


def pairwise_suite(make_suite: MakeSuite, server: OpenAIServer, **judge: Any) -> SuiteFiles:
    """Baseline answers "plain answer", the variant "better answer"; a pairwise judge at the
    loopback server compares them."""
    suite = judged_suite(make_suite, server)
    settings = suite.settings
    settings["models"]["answerer"]["replies"] = ["plain answer"]
    settings["models"]["better"] = {
        "type": "mock",
        "clearance": "OFFICIAL",
        "replies": ["better answer"],
    }
    settings["defaults"]["judges"] = []
    settings["experiments"].append({"name": "variant", "model": "better"})
    settings["pairwise_judges"] = {
        "duel": {
            "model": "loopback",
            "rubric": "pairwise request {{ id }} A: {{ answer_a }} B: {{ answer_b }}",
            **judge,
        }
    }
    settings["defaults"]["pairwise"] = ["duel"]
    return suite


def pairwise_rows(suite: SuiteFiles) -> pd.DataFrame:
    return read_results(suite.only_run_dir() / "compare__pairwise-duel__variant__rows__results.csv")


def pairwise_summary(suite: SuiteFiles) -> pd.Series:
    frame = read_results(suite.only_run_dir() / "compare__pairwise-duel__variant__results.csv")
    return frame.iloc[0]


def prefers(answer: str) -> Any:
    def respond(prompt: str) -> str:
        found = PAIR_FOR.search(prompt)
        assert found is not None, f"a pairwise request that names no row: {prompt!r}"
        return "GRADE: A" if found.group(2).strip() == answer else "GRADE: B"

    return respond


def test_pairwise_judge_records_the_order_and_a_consistent_judge_agrees_when_swapped(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.respond_with(prefers("better answer"))
    suite = pairwise_suite(make_suite, server, swap_sample=1.0, seed=3)

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    assert summary_json(result)["status"] == "complete"
    rows = pairwise_rows(suite)
    assert len(rows) == ROWS
    assert server.stats.request_count == 2 * ROWS, "every pair asked twice (swap_sample 1)"
    assert set(rows["order"]) == {"variant_first", "baseline_first"}, "the order is drawn"
    assert (rows["verdict"] == "win").all()
    assert (rows["swapped_verdict"] == "win").all()
    assert rows["consistent"].all()
    summary = pairwise_summary(suite)
    assert (summary["wins"], summary["losses"], summary["ties"]) == (ROWS, 0, 0)
    assert summary["win_rate"] == 1.0
    assert 0.6 < summary["win_rate_ci_low"] < 1.0, "Wilson: not a degenerate interval"
    assert summary["position_consistency"] == 1.0
    # A rerun draws the same order per row (seeded), so a rerun's table is identical.
    again = run_cli(*suite.args())
    assert again.code == 0, again.output
    runs = suite.run_dirs()
    second = read_results(runs[-1] / "compare__pairwise-duel__variant__rows__results.csv")
    assert list(second["order"]) == list(rows["order"])


def test_a_position_biased_judge_shows_in_the_swapped_sample(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.respond_with(lambda prompt: "Whichever came first.\nGRADE: A")
    suite = pairwise_suite(make_suite, server, swap_sample=1.0, seed=3)

    result = run_cli(*suite.args())

    assert result.code == 0, result.output
    rows = pairwise_rows(suite)
    expected = ["win" if order == "variant_first" else "loss" for order in rows["order"]]
    assert list(rows["verdict"]) == expected
    assert not rows["consistent"].any()
    summary = pairwise_summary(suite)
    assert summary["position_consistency"] == 0.0
    assert summary["wins"] + summary["losses"] == ROWS


def test_pairwise_replies_without_a_verdict_are_errors_and_the_run_says_so(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.respond_with(lambda prompt: "Both are fine.")
    suite = pairwise_suite(make_suite, server, swap_sample=0.0)

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    summary = summary_json(result)
    assert summary["status"] == "complete_with_errors"
    assert "pairwise:duel: 8 pairs with no verdict" in summary["reason"]
    rows = pairwise_rows(suite)
    assert (rows["verdict"] == "error").all()
    assert rows["explanation"].str.contains("no 'GRADE:' line").all()
    overview = pairwise_summary(suite)
    assert overview["errors"] == ROWS
    assert pd.isna(overview["win_rate"]), "no verdict is never a 0 win rate"
    assert server.stats.request_count == ROWS, "swap_sample 0: no second asks"


def test_a_pairwise_judge_cleared_below_the_data_is_refused_before_any_request(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = pairwise_suite(make_suite, server)
    suite.settings["models"]["loopback"]["clearance"] = "UNOFFICIAL"

    result = run_cli(*suite.args())

    assert result.code == 3, result.output
    assert "compare/pairwise:duel:variant" in result.output
    assert server.stats.request_count == 0


def test_a_dead_judge_endpoint_fails_the_run_naming_the_call_failure(
    make_server, make_suite: MakeSuite
) -> None:
    """Every judge call failing is never a "complete" run, whatever the error tolerance: each
    row is a judge_error with the call's failure, counted and audited."""
    server = make_server()
    suite = judged_suite(make_suite, server)
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    suite.settings["models"]["dead"] = {
        **suite.settings["models"]["loopback"],
        "base_url": f"http://127.0.0.1:{dead_port}/v1",
    }
    suite.settings["judges"]["grader"]["model"] = "dead"
    suite.settings["defaults"].update(max_error_rate=1.0, max_retries=0)

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 1, result.output
    summary = summary_json(result)
    assert summary["status"] == "failed"
    assert f"{ROWS} of {ROWS} rows (100.0%) have errors: judge_error in {ROWS}" in summary["reason"]
    assert "judge:grader: judge call failed: ClientConnectorError" in summary["reason"]
    judge = summary["experiments"][0]["judges"]["grader"]
    assert (judge["calls"], judge["passed"], judge["failed"]) == (ROWS, 0, 0)
    events = [e for e in audit_events(suite.only_run_dir()) if e["event"] == "judge_result"]
    assert len(events) == ROWS
    assert {e["grade"] for e in events} == {"error"}
    assert all(e["grade_error"].startswith("judge call failed: ") for e in events)
