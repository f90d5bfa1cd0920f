"""Stops in the LLM stage: once a budget or a requested stop is known, no request starts (first
attempts and retries alike); the requests still to come back are the ones in flight."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from elspeth.llm import (
    Budget,
    LLMConfigurationError,
    LLMStage,
    OpenAIClient,
    PricingTable,
    PromptPack,
    RetryPolicy,
    RowResult,
    StageSummary,
)
from elspeth.security import SecurityLevel
from tests.support.fixtures import MakeServer
from tests.support.openai_server import OpenAIServer, Reply

pytestmark = pytest.mark.integration

ONE = PromptPack({"accuracy": "Is {{ answer }} right for {{ question }}?"})
PACK = PromptPack(
    {"accuracy": "Is {{ answer }} right for {{ question }}?", "tone": "Tone of {{ answer }}"}
)

#: Every answer costs at least one unit: a completion token costs 1 per token.
PRICING = PricingTable.from_mapping(
    {"judge-model": {"prompt_per_1k": 0, "completion_per_1k": 1000}}
)


def rows(count: int) -> list[dict[str, str]]:
    return [{"question": f"question {i}", "answer": f"answer {i}"} for i in range(count)]


def client_for(server: OpenAIServer) -> OpenAIClient:
    return OpenAIClient(base_url=server.base_url, model="judge-model")


def run(stage: LLMStage, data: list[dict[str, str]], **kwargs: Any) -> StageSummary:
    return stage.run_sync(data, level=SecurityLevel.OFFICIAL, **kwargs)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_requested_stop_sends_nothing_more(make_server: MakeServer, concurrency: int) -> None:
    server = make_server(latency=0.02)
    stop = threading.Event()
    seen: list[RowResult] = []

    def on_result(result: RowResult) -> None:
        seen.append(result)
        if len(seen) == 5:
            stop.set()

    stage = LLMStage(client_for(server), ONE, concurrency=concurrency)
    summary = run(stage, rows(60), on_result=on_result, should_stop=stop.is_set)

    # Set while the fifth result was handled: the others in flight then (at most
    # concurrency - 1) come back, and nothing is sent after.
    assert server.stats.request_count <= 5 + concurrency - 1
    assert server.stats.request_count == summary.results == len(seen)
    assert (summary.stopped_by, summary.stop_reason) == ("early stop", "early stop requested")
    assert not summary.partial  # the caller's decision, not a shortfall


def test_no_retry_is_sent_after_the_cost_budget_is_reached(make_server: MakeServer) -> None:
    server = make_server()
    # The first request to arrive fails and its retry waits; meanwhile the other answer
    # passes the cost budget, so the retry is never sent.
    server.script(Reply.error(503, retry_after="1"))
    stage = LLMStage(
        client_for(server),
        ONE,
        concurrency=2,
        pricing=PRICING,
        budget=Budget(max_cost=Decimal(1)),
        retry_policy=RetryPolicy(max_retries=3, retry_after_cap=0.3),
    )
    summary = run(stage, rows(10))
    assert server.stats.request_count == 2
    assert (summary.results, summary.ok, summary.abandoned) == (1, 1, 1)
    assert summary.attempts == 2  # the abandoned item's failed attempt is accounted for
    assert summary.partial
    assert summary.stopped_by == "budget"
    assert summary.stop_reason is not None
    assert summary.stop_reason.startswith("cost budget of 1 reached")


def test_the_first_budget_reached_stops_the_run_and_is_named(server: OpenAIServer) -> None:
    budgets = [
        Budget(max_rows=5, scope="experiment budget"),
        Budget(max_rows=10, rows_used=7, scope="suite budget"),  # 3 rows left
    ]
    summary = run(LLMStage(client_for(server), PACK, concurrency=4, budget=budgets), rows(10))
    assert (summary.rows_started, summary.results) == (3, 6)
    assert server.stats.request_count == 6  # every criterion of the started rows, no more
    assert summary.stopped_by == "suite budget"
    assert summary.stop_reason == "suite budget: row budget of 10 reached"
    assert summary.partial


def test_a_budget_already_spent_elsewhere_sends_nothing(server: OpenAIServer) -> None:
    budgets = [
        Budget(max_cost=Decimal(100), scope="experiment budget"),
        Budget(max_cost=Decimal("2.5"), spent=Decimal("2.5"), scope="suite budget"),
    ]
    stage = LLMStage(client_for(server), ONE, concurrency=4, pricing=PRICING, budget=budgets)
    summary = run(stage, rows(10))
    assert server.stats.request_count == 0
    assert (summary.results, summary.rows_started, summary.partial) == (0, 0, True)
    assert summary.stopped_by == "suite budget"
    assert summary.stop_reason == "suite budget: cost budget of 2.5 reached (spent 2.5)"


def test_spend_elsewhere_counts_against_the_cost_budget(make_server: MakeServer) -> None:
    server = make_server(latency=0.01)
    budget = Budget(max_cost=Decimal(40), spent=Decimal(30), scope="suite budget")
    stage = LLMStage(client_for(server), ONE, concurrency=1, pricing=PRICING, budget=budget)
    summary = run(stage, rows(50))
    # Concurrency 1: each answer is checked before the next request goes out.
    assert Decimal(30) + summary.cost >= 40
    assert Decimal(30) + summary.cost - max(r.cost for r in summary.collected) < 40
    assert server.stats.request_count == summary.results < 50
    assert summary.stopped_by == "suite budget"


def test_a_budget_needs_a_price_whatever_its_scope(server: OpenAIServer) -> None:
    with pytest.raises(LLMConfigurationError, match=r"suite budget\.max_cost"):
        LLMStage(client_for(server), ONE, budget=Budget(max_cost=Decimal(1), scope="suite budget"))


def test_a_budget_reached_by_the_last_answer_stopped_nothing(server: OpenAIServer) -> None:
    budget = Budget(max_rows=3, scope="experiment budget")
    summary = run(LLMStage(client_for(server), PACK, budget=budget), rows(3))
    assert (summary.results, summary.partial, summary.stopped_by) == (6, False, None)
