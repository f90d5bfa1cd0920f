"""Budgets (per experiment and for the suite) and early stop, through the real CLI in its own
process against the loopback server: once a stop is known no new model call goes out, the
summary says what stopped the run, and its row counts are the rows in the results files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from elspeth.audit import verify_run_audit
from tests.suite.conftest import (
    MODEL_NAME,
    MakeSuite,
    SuiteFiles,
    audit_events,
    completion,
    read_results,
    run_cli_subprocess,
    scoring_plugins,
    summary_json,
)
from tests.support.openai_server import Reply

pytestmark = pytest.mark.integration

#: Every scripted answer has 10 prompt and 5 completion tokens: (10 x 0.5 + 5 x 1.5) / 1000.
PRICING = {MODEL_NAME: {"prompt_per_1k": "0.5", "completion_per_1k": "1.5"}}
ANSWER_COST = Decimal("0.0125")


def results_rows(suite: SuiteFiles, experiment: str) -> int:
    """Rows in the experiment's results CSV (0 when none was written)."""
    path = suite.only_run_dir() / f"{experiment}__results__results.csv"
    return len(read_results(path)) if path.exists() else 0


def experiments_by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {experiment["name"]: experiment for experiment in summary["experiments"]}


def test_an_experiment_row_budget_asks_only_for_its_rows(
    make_server, make_suite: MakeSuite
) -> None:
    concurrency, allowed = 4, 7
    server = make_server(latency=0.05)
    suite = make_suite(server, rows=40)
    suite.settings["prompt_packs"]["rate"]["criteria"]["tone"] = "Tone of request {{ id }}"
    suite.defaults.update(concurrency=concurrency, chunk_rows=5, budget={"max_rows": allowed})

    result = run_cli_subprocess(*suite.args("--json-summary", "-"))

    assert result.code != 0, result.output
    # Rows already started finish (every criterion); no row past the budget is asked for.
    assert server.stats.request_count <= allowed * 2 + concurrency
    assert server.stats.request_count == allowed * 2
    (experiment,) = summary_json(result)["experiments"]
    assert experiment["stopped_by"] == "experiment budget"
    assert "row budget of 7 reached" in experiment["stop_reason"]
    (decided,) = [e for e in audit_events(suite.only_run_dir()) if e["event"] == "budget_stop"]
    assert (decided["scope"], decided["limit"], decided["max_rows"]) == (
        "experiment budget",
        "rows",
        7,
    )
    assert (decided["rows"], decided["partial"]) == (allowed, True)
    # Rows 0-4 are a finished chunk; rows 5 and 6 were answered but their chunk was not.
    assert experiment["rows"] == results_rows(suite, "base") == 5
    assert (experiment["rows_loaded"], experiment["answers"], experiment["errors"]) == (40, 14, 0)


def _two_experiments(suite: SuiteFiles, suite_budget: str) -> None:
    suite.settings["pricing"] = PRICING
    suite.settings["budget"] = {"max_cost": suite_budget}
    suite.settings["experiments"].append({"name": "variant"})
    # Each experiment's own budget is far away: the suite's is what stops the run.
    suite.defaults.update(concurrency=1, chunk_rows=5, budget={"max_cost": "1"})


def test_the_suite_budget_carries_across_experiments_and_resume(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    server.script(*[Reply(body=completion('{"score": 3}'))] * 100)
    suite = make_suite(server, rows=10)
    _two_experiments(suite, "0.2")  # 16 answers: all 10 of base, 6 of variant

    stopped = run_cli_subprocess(*suite.args("--json-summary", "-"))

    assert stopped.code == 1, stopped.output
    assert server.stats.request_count == 16  # concurrency 1: checked before every request
    assert summary_json(stopped)["status"] == "stopped"
    assert summary_json(stopped)["budget"] == {
        "suite": {"max_cost": "0.2", "max_rows": None, "cost_used": "0.2000", "rows_used": 16},
        "stopped_by": "suite budget",
    }
    experiments = experiments_by_name(summary_json(stopped))
    base, variant = experiments["base"], experiments["variant"]
    assert (base["stopped_by"], base["rows"], Decimal(base["cost"])) == (None, 10, 10 * ANSWER_COST)
    assert variant["stopped_by"] == "suite budget"
    assert "suite budget: cost budget of 0.2 reached (spent 0.2000)" in variant["stop_reason"]
    assert (variant["answers"], Decimal(variant["cost"])) == (6, 6 * ANSWER_COST)
    assert base["rows"] == results_rows(suite, "base")
    assert variant["rows"] == results_rows(suite, "variant") == 5
    done = [e for e in audit_events(suite.only_run_dir()) if e["event"] == "llm_stage_done"]
    assert [e["stopped_by"] for e in done] == [None, "suite budget"]
    (decided,) = [e for e in audit_events(suite.only_run_dir()) if e["event"] == "budget_stop"]
    assert (decided["experiment"], decided["scope"], decided["limit"]) == (
        "variant", "suite budget", "cost",
    )  # fmt: skip
    assert (decided["max_cost"], decided["spent"], decided["rows"]) == ("0.2", "0.2000", 16)

    # Resumed with a little more: the checkpointed 0.2 counts, so two answers are left.
    suite.settings["budget"] = {"max_cost": "0.225"}
    run_id = suite.only_run_dir().name
    resumed = run_cli_subprocess(*suite.args("--resume", run_id, "--json-summary", "-"))

    assert resumed.code != 0, resumed.output
    assert server.stats.request_count == 18
    variant = experiments_by_name(summary_json(resumed))["variant"]
    assert variant["stopped_by"] == "suite budget"
    assert (variant["answers"], variant["resumed"]) == (8, 6)
    assert variant["rows"] == results_rows(suite, "variant") == 5
    # Both runs' lines are one chain, and the manifest holds the resumed run's last hash.
    assert verify_run_audit(suite.only_run_dir()).problems == ()
    assert [e["event"] for e in audit_events(suite.only_run_dir())].count("run_started") == 2


def test_an_unpriced_model_cannot_have_a_suite_cost_budget(make_server, make_suite) -> None:
    suite = make_suite(make_server(), rows=3)
    suite.settings["budget"] = {"max_cost": "1"}

    result = run_cli_subprocess(*suite.args("--validate-only"))

    assert result.code == 2, result.output
    assert "budget.max_cost (the suite budget) needs a price" in result.output


def test_early_stop_sends_nothing_after_the_decision(make_server, make_suite: MakeSuite) -> None:
    # Chunks long enough that a decision lands inside one: a check per chunk would go on
    # asking for the rest of it.
    concurrency, chunk, rows = 4, 25, 300
    server = make_server(latency=0.05)
    suite = make_suite(server, rows=rows)
    suite.settings["plugins"] = {
        **scoring_plugins("OFFICIAL"),
        "stop": {
            "plugin": "threshold_early_stop",
            "clearance": "OFFICIAL",
            # Every score is 1-5: the first row of the first chunk decides.
            "params": {
                "column": "quality_score",
                "threshold": 0,
                "direction": "above",
                "fraction": 1.0,
            },
        },
    }
    suite.defaults.update(concurrency=concurrency, chunk_rows=chunk, row_plugins=["score", "stop"])

    result = run_cli_subprocess(*suite.args("--json-summary", "-"))

    (experiment,) = summary_json(result)["experiments"]
    assert experiment["early_stopped"], result.output
    assert experiment["stopped_by"] == "early stop"
    # Chunks finished after the decision say so again; the first decision is what counts.
    decided = next(e for e in audit_events(suite.only_run_dir()) if e["event"] == "early_stop")
    assert decided["chunk"] == 0
    assert 0 < decided["rows_marked"] <= decided["rows"] == chunk
    # The decision is recorded just before the stage is told; from then on only the requests
    # already in flight (one per worker at most) may still reach the server.
    after = [r for r in server.stats.requests if r.wall_time > decided["ts"]]
    assert len(after) <= concurrency, (len(after), server.stats.request_count)
    total = server.stats.request_count
    assert chunk <= total < rows
    # Only finished chunks are written, and the summary counts what was written.
    assert experiment["rows"] == results_rows(suite, "base")
    assert experiment["rows"] % chunk == 0
    assert experiment["rows"] >= chunk
    assert experiment["answers"] + experiment["errors"] == total
    print(f"requests: {total}, after the decision: {len(after)}, rows: {experiment['rows']}")


def test_rows_are_the_rows_of_the_results_file_with_repeats(tmp_path: Path, make_suite) -> None:
    suite = make_suite(None, rows=6)
    suite.defaults.update(repeats=2, chunk_rows=4)

    result = run_cli_subprocess(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    (experiment,) = summary_json(result)["experiments"]
    assert (experiment["rows_loaded"], experiment["stopped_by"]) == (6, None)
    assert experiment["rows"] == results_rows(suite, "base") == 12
