"""The LLM stage against a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import logging
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from elspeth.errors import ElspethError
from elspeth.llm import (
    AzureOpenAIClient,
    Budget,
    ErrorKind,
    LLMStage,
    OpenAIClient,
    Outcome,
    PricingTable,
    PromptPack,
    ResponseCache,
    RetryPolicy,
    RowResult,
    StageSummary,
    TemplateError,
    create_client,
)
from elspeth.security import SecurityLevel
from tests.llm.conftest import SECRET_KEY, MakeServer
from tests.support.openai_server import OpenAIServer, Reply

pytestmark = pytest.mark.integration

FAST_RETRIES = RetryPolicy(max_retries=3, initial_backoff=0.001, max_backoff=0.01)
PACK = PromptPack(
    {"accuracy": "Is {{ answer }} right for {{ question }}?", "tone": "Tone of {{ answer }}"},
    system="You are a careful judge.",
)
ONE = PromptPack({"accuracy": "Is {{ answer }} right for {{ question }}?"})
OFFICIAL = SecurityLevel.OFFICIAL


def rows(count: int) -> list[dict[str, str]]:
    return [{"question": f"question {i}", "answer": f"answer {i}"} for i in range(count)]


def client_for(server: OpenAIServer, api_key: str | None = None, **options: Any) -> OpenAIClient:
    return OpenAIClient(
        base_url=server.base_url,
        model="judge-model",
        api_key_env=api_key,
        parameters={"temperature": 0, "seed": 42},
        **options,
    )


def run(stage: LLMStage, data: list[dict[str, str]], **kwargs: Any) -> StageSummary:
    kwargs.setdefault("level", OFFICIAL)
    return stage.run_sync(data, **kwargs)


def only(summary: StageSummary) -> RowResult:
    (result,) = summary.collected
    return result


def test_answers_are_ok_with_text_tokens_and_one_attempt(server: OpenAIServer) -> None:
    summary = run(LLMStage(client_for(server), PACK, concurrency=3), rows(4))
    assert (summary.results, summary.ok, summary.errors, summary.partial) == (8, 8, 0, False)
    assert {r.key for r in summary.collected} == {
        (row, criterion, 0) for row in range(4) for criterion in ("accuracy", "tone")
    }
    for result in summary.collected:
        assert result.outcome is Outcome.OK
        assert json.loads(result.text or "")["score"] in range(1, 6)
        assert len(result.attempts) == 1
        assert result.prompt_tokens > 0
        assert result.completion_tokens > 0
    sent = server.stats.requests[0].body
    assert sent["model"] == "judge-model"
    assert sent["temperature"] == 0
    assert sent["seed"] == 42
    assert sent["messages"][0] == {"role": "system", "content": "You are a careful judge."}


def test_concurrency_bound_is_respected(make_server: MakeServer) -> None:
    server = make_server(latency=0.05)
    summary = run(LLMStage(client_for(server), ONE, concurrency=5), rows(40))
    assert summary.ok == 40
    assert server.stats.request_count == 40
    assert 3 <= server.stats.max_concurrent <= 5


def test_5xx_is_retried_until_success_and_every_attempt_is_recorded(server: OpenAIServer) -> None:
    server.script(Reply.error(503), Reply.error(500))
    result = only(run(LLMStage(client_for(server), ONE, retry_policy=FAST_RETRIES), rows(1)))
    assert result.outcome is Outcome.OK
    assert [a.outcome for a in result.attempts] == ["server_error", "server_error", "ok"]
    assert [a.status for a in result.attempts] == [503, 500, 200]
    assert result.retry_reasons == ("server_error", "server_error")
    assert result.audit_event("e").attempt_count == 3
    assert server.stats.request_count == 3


def test_retries_stop_at_the_limit_with_an_error(server: OpenAIServer) -> None:
    server.script(*[Reply.error(502)] * 5)
    policy = RetryPolicy(max_retries=2, initial_backoff=0.001)
    result = only(run(LLMStage(client_for(server), ONE, retry_policy=policy), rows(1)))
    assert result.outcome is Outcome.ERROR
    assert result.error_kind is ErrorKind.SERVER_ERROR
    assert result.error_message is not None
    assert result.error_message.startswith("gave up after 3 attempts; last: HTTP 502")
    assert server.stats.request_count == 3


def test_max_retries_zero_makes_exactly_one_attempt(server: OpenAIServer) -> None:
    server.script(Reply.error(503), Reply.error(429, retry_after="0"))
    stage = LLMStage(
        client_for(server), ONE, retry_policy=RetryPolicy(max_retries=0), concurrency=1
    )
    summary = run(stage, rows(2))
    assert [r.error_kind for r in sorted(summary.collected, key=lambda r: r.row)] == [
        ErrorKind.SERVER_ERROR,
        ErrorKind.RATE_LIMITED,
    ]
    assert all(len(r.attempts) == 1 for r in summary.collected)
    assert server.stats.request_count == 2


def test_retry_after_is_honoured(server: OpenAIServer) -> None:
    server.script(Reply.error(429, retry_after="0.3"))
    result = only(run(LLMStage(client_for(server), ONE, retry_policy=FAST_RETRIES), rows(1)))
    assert result.outcome is Outcome.OK
    assert result.attempts[0].outcome == "rate_limited"
    assert result.attempts[0].retry_delay_s == pytest.approx(0.3)
    first, second = server.stats.requests
    gap = second.started - first.started
    assert 0.25 <= gap < 10.0  # the 0.3 s asked for, with tolerance; the upper bound is sanity


def test_4xx_is_not_retried(server: OpenAIServer) -> None:
    server.script(Reply.error(400), Reply.error(404))
    stage = LLMStage(client_for(server), ONE, retry_policy=FAST_RETRIES, concurrency=1)
    summary = run(stage, rows(2))
    assert all(r.error_kind is ErrorKind.CLIENT_ERROR for r in summary.collected)
    assert {r.error_message for r in summary.collected} == {"HTTP 400 (400)", "HTTP 404 (404)"}
    assert server.stats.request_count == 2


def test_malformed_body_is_an_error_not_retried(server: OpenAIServer) -> None:
    server.script(Reply.malformed(), Reply.malformed(b'{"choices": [{"message": {}}]}'))
    stage = LLMStage(client_for(server), ONE, retry_policy=FAST_RETRIES, concurrency=1)
    summary = run(stage, rows(3))
    kinds = [r.error_kind for r in sorted(summary.collected, key=lambda r: r.row)]
    assert kinds == [ErrorKind.MALFORMED_RESPONSE, ErrorKind.MALFORMED_RESPONSE, None]
    assert (summary.ok, summary.errors) == (1, 2)
    assert server.stats.request_count == 3


def test_timeout_is_an_error_kind_of_its_own(server: OpenAIServer) -> None:
    server.script(Reply.ok(delay=1.0))
    client = client_for(server, timeout=0.2)
    result = only(run(LLMStage(client, ONE, retry_policy=RetryPolicy(max_retries=0)), rows(1)))
    assert result.error_kind is ErrorKind.TIMEOUT
    assert result.error_message == "no complete response within 0.2 s"


def test_connection_refused_is_retried_then_an_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAIClient(base_url=f"http://127.0.0.1:{port}/v1", model="m")
    policy = RetryPolicy(max_retries=1, initial_backoff=0.001)
    result = only(run(LLMStage(client, ONE, retry_policy=policy), rows(1)))
    assert result.error_kind is ErrorKind.CONNECTION
    assert [a.outcome for a in result.attempts] == ["connection", "connection"]


def test_rerun_hits_the_cache_and_a_different_level_misses(
    server: OpenAIServer, tmp_path: Path
) -> None:
    pricing = PricingTable.from_mapping(
        {"judge-model": {"prompt_per_1k": 1, "completion_per_1k": 2}}
    )
    with ResponseCache(tmp_path / "cache") as cache:
        stage = LLMStage(client_for(server), PACK, cache=cache, pricing=pricing)
        first = run(stage, rows(5))
        assert (first.ok, first.cached, server.stats.request_count) == (10, 0, 10)
        assert first.cost > 0
        second = run(stage, rows(5))
        assert (second.ok, second.cached, server.stats.request_count) == (10, 10, 10)
        assert second.cost == 0
        assert {r.key: r.text for r in first.collected} == {r.key: r.text for r in second.collected}
        higher = run(stage, rows(5), level=SecurityLevel.OFFICIAL_SENSITIVE)
        assert (higher.cached, server.stats.request_count) == (0, 20)


def test_errors_are_never_cached(server: OpenAIServer, tmp_path: Path) -> None:
    server.script(Reply.error(400), Reply.malformed())
    with ResponseCache(tmp_path / "cache") as cache:
        stage = LLMStage(client_for(server), ONE, cache=cache, concurrency=1)
        first = run(stage, rows(3))
        assert (first.ok, first.errors, len(cache)) == (1, 2, 1)
        second = run(stage, rows(3))
        assert (second.ok, second.cached) == (3, 1)
        assert server.stats.request_count == 5  # 3, then only the two that failed


def test_costs_are_accounted_and_the_cost_budget_stops_cleanly(make_server: MakeServer) -> None:
    server = make_server(latency=0.02)
    pricing = PricingTable.from_mapping(
        {"judge-model": {"prompt_per_1k": 0, "completion_per_1k": 1000}}
    )
    stage = LLMStage(
        client_for(server), ONE, concurrency=2, pricing=pricing, budget=Budget(max_cost=Decimal(25))
    )
    summary = run(stage, rows(30))
    per_request = {r.cost for r in summary.collected}
    assert per_request == {Decimal(r.completion_tokens) for r in summary.collected}
    assert summary.cost == sum(r.cost for r in summary.collected)
    assert summary.partial
    assert summary.stop_reason is not None
    assert "cost budget of 25 reached" in summary.stop_reason
    assert summary.cost >= 25
    assert summary.results < 30
    # Nothing was sent after the stop without coming back as a result.
    assert server.stats.request_count == summary.results
    assert summary.cost - max(per_request) * 2 < 25  # only in-flight requests ran past it


def test_row_budget_stops_with_a_partial_result_and_exact_budget_is_complete(
    server: OpenAIServer,
) -> None:
    stage = LLMStage(client_for(server), PACK, concurrency=4, budget=Budget(max_rows=3))
    summary = run(stage, rows(10))
    assert (summary.rows_started, summary.results, summary.partial) == (3, 6, True)
    assert summary.stop_reason == "row budget of 3 reached"
    assert {r.row for r in summary.collected} == {0, 1, 2}
    exact = run(LLMStage(client_for(server), PACK, budget=Budget(max_rows=3)), rows(3))
    assert (exact.results, exact.partial) == (6, False)


def test_done_items_are_skipped(server: OpenAIServer) -> None:
    stage = LLMStage(client_for(server), PACK)
    summary = run(stage, rows(3), done={(0, "accuracy"), (1, "tone", 0)})
    assert summary.skipped == 2
    assert (0, "accuracy", 0) not in {r.key for r in summary.collected}
    assert summary.results == server.stats.request_count == 4


def test_render_errors_are_row_errors_without_a_request(server: OpenAIServer) -> None:
    data = [{"question": "q", "answer": "a"}, {"question": "q"}]
    summary = run(LLMStage(client_for(server), ONE, concurrency=1), data)
    failed = next(r for r in summary.collected if r.outcome is Outcome.ERROR)
    assert failed.row == 1
    assert failed.error_kind is ErrorKind.PROMPT_RENDER
    assert failed.error_message == (
        "template prompts.criteria.accuracy.user: 'answer' is undefined; "
        "the row's columns are: question"
    )
    assert server.stats.request_count == 1


def test_columns_are_checked_before_any_row_is_read(server: OpenAIServer) -> None:
    def never_read() -> Any:
        raise AssertionError("rows were read")
        yield

    with pytest.raises(TemplateError, match="uses field 'answer'"):
        run(LLMStage(client_for(server), ONE), never_read(), columns=["question"])
    assert server.stats.request_count == 0


def test_callback_receives_results_and_its_exception_stops_the_run(server: OpenAIServer) -> None:
    seen: list[RowResult] = []

    async def record(result: RowResult) -> None:
        seen.append(result)
        if len(seen) == 3:
            raise RuntimeError("sink broke")

    with pytest.raises(RuntimeError, match="sink broke"):
        run(LLMStage(client_for(server), ONE, concurrency=2), rows(50), on_result=record)
    assert len(seen) == 3
    assert server.stats.request_count < 50


def test_azure_path_query_and_api_key_header(make_server: MakeServer, api_key: str) -> None:
    server = make_server(api_key=SECRET_KEY)
    client = AzureOpenAIClient(
        endpoint=server.endpoint,
        deployment="gpt4o-prod",
        api_version="2024-06-01",
        api_key_env=f"${{{api_key}}}",
        model="gpt-4o",
    )
    result = only(run(LLMStage(client, ONE), rows(1)))
    assert result.outcome is Outcome.OK
    (request,) = server.stats.requests
    assert request.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert request.query == {"api-version": "2024-06-01"}
    assert request.headers["api-key"] == SECRET_KEY
    assert "Authorization" not in request.headers
    assert client.identity.deployment == "gpt4o-prod"


def test_openai_sends_the_key_as_bearer(make_server: MakeServer, api_key: str) -> None:
    server = make_server(api_key=SECRET_KEY)
    client = create_client(
        "openai", {"base_url": server.base_url, "model": "m", "api_key_env": api_key}
    )
    assert only(run(LLMStage(client, ONE), rows(1))).outcome is Outcome.OK
    assert server.stats.requests[0].headers["Authorization"] == f"Bearer {SECRET_KEY}"


def test_the_api_key_leaks_nowhere(
    make_server: MakeServer, api_key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A server that rejects our key with a body that repeats it, and one that accepts it.
    rejecting = make_server(api_key="sk-some-other-key")
    accepting = make_server(api_key=SECRET_KEY)
    accepting.script(Reply.error(429, retry_after="0"), Reply.error(503))
    audit: list[dict[str, Any]] = []
    summaries = []
    with ResponseCache(tmp_path / "cache") as cache:
        for server in (rejecting, accepting):
            client = client_for(server, api_key)
            stage = LLMStage(client, PACK, cache=cache, retry_policy=FAST_RETRIES)
            summary = run(
                stage, rows(3), on_result=lambda r: audit.append(r.audit_event("e").fields())
            )
            summaries.append(summary.as_dict())
            texts = [repr(client), repr(client.identity)]
    rejected = [record for record in audit if record["outcome"] == "error"]
    assert len(rejected) == 6
    assert {record["error_message"] for record in rejected} == {"HTTP 401 (invalid_api_key)"}
    assert SECRET_KEY in rejecting.stats.requests[0].headers["Authorization"]  # it was sent
    errors: list[str] = []
    for setting in (SECRET_KEY, "UNSET_VARIABLE_FOR_TEST"):
        with pytest.raises(ElspethError) as caught:
            OpenAIClient(base_url="http://127.0.0.1:1/v1", model="m", api_key_env=setting)
        errors.append(str(caught.value))
    outputs = [
        json.dumps(audit),
        json.dumps(summaries),
        caplog.text,
        *(record.getMessage() for record in caplog.records),
        *texts,
        *errors,
    ]
    for output in outputs:
        assert SECRET_KEY not in output
    assert "retrying" in caplog.text  # the logs did record the retries
    files = list((tmp_path / "cache").iterdir())
    assert files
    for path in files:
        assert SECRET_KEY.encode() not in path.read_bytes()
    assert summaries[1]["ok"] == 6


def test_mock_client_runs_offline_and_deterministically() -> None:
    first = run(LLMStage(create_client("mock", {"seed": 5}), PACK), rows(5))
    second = run(LLMStage(create_client("mock", {"seed": 5}), PACK), rows(5))
    assert first.ok == 10
    assert {r.key: r.text for r in first.collected} == {r.key: r.text for r in second.collected}
