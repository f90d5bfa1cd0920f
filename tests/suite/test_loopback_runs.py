"""End to end against the loopback OpenAI-compatible server: the real CLI, the standalone daemon,
real workers. Concurrency, retries and their limits, ERROR vs FAIL, cache, costs, budgets."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest

from elspeth.sinks import verify_run
from elspeth.sinks._errors import SinkError
from tests.suite.conftest import (
    MODEL_NAME,
    MakeSuite,
    audit_events,
    completion,
    manifest,
    read_results,
    requests_per_row,
    row_id_of,
    run_cli,
    summary_json,
)
from tests.support.openai_server import Reply, completion_body

pytestmark = pytest.mark.integration

PROMPT_PRICE = Decimal("0.5")
COMPLETION_PRICE = Decimal("1.5")


def test_concurrency_bound_is_respected(make_server, make_suite: MakeSuite) -> None:
    server = make_server(latency=0.05)
    suite = make_suite(server, rows=40)
    suite.defaults["concurrency"] = 3

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    assert server.stats.request_count == 40
    # Three slots, 40 slow requests: the bound is reached and never passed.
    assert server.stats.max_concurrent == 3
    assert summary_json(result)["status"] == "complete"


def test_retries_then_success_honour_retry_after(make_server, make_suite: MakeSuite) -> None:
    server = make_server()
    suite = make_suite(server, rows=6)
    suite.defaults.update(concurrency=1, max_retries=3)
    # Concurrency 1 takes rows in order, so the script is row R000's.
    server.script(Reply.error(503), Reply.error(429, retry_after="1"))

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    assert requests_per_row(server) == {"R000": 3, **{f"R00{i}": 1 for i in range(1, 6)}}
    first_row = [r for r in server.stats.requests if row_id_of(r) == "R000"]
    assert first_row[2].started - first_row[1].started >= 0.95, "Retry-After: 1 not honoured"
    experiment = summary_json(result)["experiments"][0]
    assert (experiment["answers"], experiment["errors"], experiment["retries"]) == (6, 0, 2)
    events = [e for e in audit_events(suite.only_run_dir()) if e["event"] == "llm_result"]
    retried = next(e for e in events if e["row"] == 0)
    assert retried["attempt_count"] == 3
    assert retried["retry_reasons"] == ["server_error", "rate_limited"]
    data = read_results(suite.only_run_dir() / "base__results__results.csv")
    assert (data["quality_outcome"] == "ok").all()


@pytest.mark.parametrize("max_retries", [0, 1])
def test_retry_limit_then_error_recorded(
    make_server, make_suite: MakeSuite, max_retries: int
) -> None:
    server = make_server()
    suite = make_suite(server, rows=5)
    suite.defaults.update(concurrency=1, max_retries=max_retries, max_error_rate=0.5)
    server.script(*[Reply.error(503)] * (max_retries + 2))  # one more than the limit allows

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    assert summary_json(result)["status"] == "complete_with_errors"
    counts = requests_per_row(server)
    assert counts["R000"] == max_retries + 1, "attempts on the failing row"
    # The spare scripted failure lands on the next row, which then retries (if allowed).
    assert counts["R001"] == (1 if max_retries == 0 else 2)
    data = read_results(suite.only_run_dir() / "base__results__results.csv").set_index("id")
    assert data.loc["R000", "quality_outcome"] == "error"
    assert pd.isna(data.loc["R000", "quality_response"])
    expected_r001 = "error" if max_retries == 0 else "ok"
    assert data.loc["R001", "quality_outcome"] == expected_r001
    assert (data.loc[["R002", "R003", "R004"], "quality_outcome"] == "ok").all()
    first = next(
        e
        for e in audit_events(suite.only_run_dir())
        if e["event"] == "llm_result" and e["row"] == 0
    )
    assert (first["outcome"], first["error_kind"]) == ("error", "server_error")
    assert first["attempt_count"] == max_retries + 1


def test_error_is_infrastructure_fail_is_a_validator_verdict(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = make_suite(server, rows=6)
    suite.defaults.update(
        concurrency=1, max_retries=0, row_plugins=["answer_shape"], max_error_rate=0.5
    )
    suite.settings["plugins"] = {
        "answer_shape": {
            "plugin": "json_schema_validator",
            "clearance": "OFFICIAL",
            "params": {
                "source": "quality_response",
                "schema": {"type": "object", "required": ["score"]},
            },
        }
    }
    server.script(
        Reply(body=completion("I would give this one a four.")),  # R000: answered, not JSON
        Reply.error(500),  # R001: no answer at all
        Reply.malformed(),  # R002: the body is not a chat completion
    )

    result = run_cli(*suite.args())

    assert result.code == 0, result.output
    data = read_results(suite.only_run_dir() / "base__results__results.csv").set_index("id")
    # FAIL: the model answered (outcome ok) and the validator judged the answer invalid.
    assert data.loc["R000", "quality_outcome"] == "ok"
    assert data.loc["R000", "quality_response"] == "I would give this one a four."
    assert not data.loc["R000", "quality_response_valid"]
    # ERROR: infrastructure; the validator does not judge what never arrived.
    for row_id in ("R001", "R002"):
        assert data.loc[row_id, "quality_outcome"] == "error"
        assert pd.isna(data.loc[row_id, "quality_response_valid"])
    for row_id in ("R003", "R004", "R005"):
        assert data.loc[row_id, "quality_outcome"] == "ok"
        assert data.loc[row_id, "quality_response_valid"]
    kinds = {
        e["row"]: e["error_kind"]
        for e in audit_events(suite.only_run_dir())
        if e["event"] == "llm_result"
    }
    assert kinds[1] == "server_error"
    assert kinds[2] == "malformed_response"
    assert kinds[0] is None


def test_rerun_is_served_from_the_cache(make_server, make_suite: MakeSuite) -> None:
    server = make_server()
    suite = make_suite(server, rows=12)
    suite.defaults["cache"] = True
    # Priced, so that "this run paid nothing" is a cost of 0 (without a price it is unknown).
    suite.settings["pricing"] = {
        MODEL_NAME: {"prompt_per_1k": str(PROMPT_PRICE), "completion_per_1k": "1.5"}
    }

    first = run_cli(*suite.args("--json-summary", "-"))
    assert first.code == 0, first.output
    assert server.stats.request_count == 12
    second = run_cli(*suite.args("--json-summary", "-"))

    assert second.code == 0, second.output
    assert server.stats.request_count == 12, "the rerun called the model again"
    experiment = summary_json(second)["experiments"][0]
    assert (experiment["answers"], experiment["cached"], experiment["cost"]) == (12, 12, "0")
    assert len(suite.run_dirs()) == 2


def test_costs_follow_the_pricing_table(make_server, make_suite: MakeSuite) -> None:
    server = make_server()
    suite = make_suite(server, rows=10)
    suite.settings["pricing"] = {
        MODEL_NAME: {"prompt_per_1k": str(PROMPT_PRICE), "completion_per_1k": "1.5"}
    }

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 0, result.output
    # What the server reported as usage, request by request.
    usages = [completion_body(r.body, include_usage=True) for r in server.stats.requests]
    prompt = sum(json.loads(u)["usage"]["prompt_tokens"] for u in usages)
    answer = sum(json.loads(u)["usage"]["completion_tokens"] for u in usages)
    experiment = summary_json(result)["experiments"][0]
    assert (experiment["prompt_tokens"], experiment["completion_tokens"]) == (prompt, answer)
    expected = (prompt * PROMPT_PRICE + answer * COMPLETION_PRICE) / 1000
    assert Decimal(experiment["cost"]) == expected
    audited = sum(
        Decimal(e["cost"]) for e in audit_events(suite.only_run_dir()) if e["event"] == "llm_result"
    )
    assert audited == expected


@pytest.mark.parametrize(
    ("budget", "stop_reason"),
    [({"max_rows": 5}, "row budget"), ({"max_cost": "0.02"}, "cost")],
)
def test_budget_stops_the_run(
    make_server, make_suite: MakeSuite, budget: dict[str, object], stop_reason: str
) -> None:
    server = make_server()
    suite = make_suite(server, rows=20)
    suite.defaults.update(concurrency=1, budget=budget)
    # Every answer costs (10 x 0.5 + 5 x 1.5) / 1000 = 0.0125: the second one passes 0.02.
    server.script(*[Reply(body=completion('{"score": 3}'))] * 20)
    suite.settings["pricing"] = {
        MODEL_NAME: {"prompt_per_1k": str(PROMPT_PRICE), "completion_per_1k": "1.5"}
    }

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 1, result.output
    assert stop_reason in result.stderr
    assert server.stats.request_count == (5 if "max_rows" in budget else 2)
    run_dir = suite.only_run_dir()
    recorded = manifest(run_dir)
    assert recorded["status"] == "stopped"
    assert recorded["reason"]
    with pytest.raises(SinkError, match="stopped"):
        verify_run(run_dir)
    # Nothing beside the manifest claims completeness: every output is listed in a manifest
    # that says stopped, and there is no summary claiming "complete".
    listed = {artifact["path"] for artifact in recorded["artifacts"]}
    outputs = {p.name for p in run_dir.glob("base__*")}
    assert outputs <= listed
    assert '"status": "complete"' not in result.stdout


def test_budget_stop_says_which_budget_in_the_manifest(make_suite: MakeSuite) -> None:
    suite = make_suite(None, rows=10)
    suite.defaults.update(concurrency=1, budget={"max_rows": 3})

    result = run_cli(*suite.args())

    assert result.code == 1, result.output
    assert "row budget of 3 reached" in result.stderr
    assert "row budget" in manifest(suite.only_run_dir())["reason"]


def test_budget_stop_writes_a_json_summary_that_says_so(make_suite: MakeSuite) -> None:
    suite = make_suite(None, rows=10)
    suite.defaults.update(concurrency=1, budget={"max_rows": 3})

    result = run_cli(*suite.args("--json-summary", "-"))

    assert result.code == 1, result.output
    summary = summary_json(result)
    assert summary["status"] == "stopped"
    assert summary["exit_code"] == 1
    assert "row budget of 3 reached" in summary["reason"]


def test_a_budget_stopped_run_resumes_with_a_larger_budget(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = make_suite(server, rows=8)
    suite.defaults.update(concurrency=1, budget={"max_rows": 3})
    stopped = run_cli(*suite.args())
    assert stopped.code == 1, stopped.output
    asked_before = server.stats.request_count
    run_dir = suite.only_run_dir()

    suite.defaults["budget"] = {"max_rows": 100}
    resumed = run_cli(*suite.args("--resume", run_dir.name))

    assert resumed.code == 0, resumed.output
    assert manifest(run_dir)["status"] == "complete"
    assert server.stats.request_count == 8
    assert asked_before == 3
