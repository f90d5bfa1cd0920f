"""Unit tests of pure functions and small classes; the rate limiter runs on a fake clock."""

from __future__ import annotations

import asyncio
import email.utils
import json
import pickle
import random
from decimal import Decimal

import pytest

from elspeth.errors import ConfigurationError
from elspeth.llm import (
    ApiKey,
    AttemptFailure,
    Budget,
    ChatRequest,
    ErrorKind,
    LLMConfigurationError,
    MockClient,
    PricingTable,
    RateLimiter,
    RetryPolicy,
    TokenBucket,
    create_client,
    parse_retry_after,
)
from elspeth.llm._providers._http import parse_chat_completion


class FakeClock:
    """Time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_token_bucket_unit_fake_clock_paces_requests_per_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=120, clock=clock, sleep=clock.sleep)

    async def take(count: int) -> None:
        for _ in range(count):
            await limiter.acquire(0)

    asyncio.run(take(11))
    # Capacity is one second of refill (2 requests); the other 9 wait 0.5 s each.
    assert clock.now - 1000.0 == pytest.approx(4.5)
    assert all(pause == pytest.approx(0.5) for pause in clock.sleeps)


def test_token_bucket_unit_fake_clock_tokens_per_minute_with_settlement() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=6000, clock=clock, sleep=clock.sleep)  # 100/s

    async def scenario() -> list[float]:
        waits = [await limiter.acquire(100)]  # the full bucket: no wait
        limiter.settle(100, 300)  # the answer used 200 more: the bucket is 200 in debt
        waits.append(await limiter.acquire(50))  # needs 250 of refill: 2.5 s
        limiter.settle(50, 0)  # a failed attempt is refunded
        waits.append(await limiter.acquire(50))  # the refund covers it
        return waits

    assert asyncio.run(scenario()) == [0.0, pytest.approx(2.5), 0.0]


def test_token_bucket_unit_fake_clock_oversized_request_waits_for_full_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock, sleep=clock.sleep)  # 1 per second, capacity 1

    async def scenario() -> tuple[float, float]:
        return await bucket.take(3), await bucket.take(1)

    first, second = asyncio.run(scenario())
    assert first == 0.0  # a full bucket lets it through, into debt
    assert second == pytest.approx(3.0)  # 2 of debt + 1 needed


def test_rate_limit_must_be_positive() -> None:
    with pytest.raises(LLMConfigurationError, match="positive"):
        TokenBucket(0)


def test_retry_after_parses_seconds_dates_and_milliseconds() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after": date}, now=lambda: now) == pytest.approx(7.0)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=lambda: now) == 0.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-4"}) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({}) is None


def test_backoff_is_full_jitter_bounded_and_retry_after_is_capped() -> None:
    policy = RetryPolicy(max_retries=5, initial_backoff=1.0, max_backoff=5.0, retry_after_cap=10.0)
    rng = random.Random(7)
    for retry in range(1, 6):
        ceiling = min(5.0, 2.0 ** (retry - 1))
        delays = [policy.delay(retry, None, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # really spread over the range, not a constant
    assert policy.delay(1, 4.0, rng) == 4.0
    assert policy.delay(1, 3600.0, rng) == 10.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_retries", -1), ("max_retries", 1.5), ("max_retries", True), ("max_backoff", -1.0)],
)
def test_retry_policy_rejects_bad_values_naming_them(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_parse_chat_completion_reads_text_and_usage() -> None:
    body = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3},
    }
    completion = parse_chat_completion(json.dumps(body).encode())
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == (
        "hi",
        12,
        3,
    )
    assert not completion.usage_estimated
    del body["usage"]
    assert parse_chat_completion(json.dumps(body).encode()).usage_estimated


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": null}}]}',
    ],
)
def test_parse_chat_completion_malformed_bodies_are_errors(raw: bytes) -> None:
    with pytest.raises(AttemptFailure) as caught:
        parse_chat_completion(raw)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE


def test_pricing_costs_per_thousand_tokens_exactly() -> None:
    table = PricingTable.from_mapping(
        {"m": {"prompt_per_1k": 0.0015, "completion_per_1k": "0.002"}}
    )
    assert table.cost("m", 1000, 500) == Decimal("0.0025")
    assert table.cost("unpriced", 1000, 500) == Decimal(0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"m": {"prompt_per_1k": 1}}, r"pricing\.m: missing completion_per_1k"),
        ({"m": {"prompt_per_1k": 1, "completion_per_1k": 1, "x": 2}}, r"unknown key\(s\) x"),
        ({"m": {"prompt_per_1k": "cheap", "completion_per_1k": 1}}, r"pricing\.m\.prompt_per_1k"),
        ({"m": {"prompt_per_1k": -1, "completion_per_1k": 1}}, ">= 0"),
    ],
)
def test_pricing_errors_name_the_entry(table: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(LLMConfigurationError, match=message):
        PricingTable.from_mapping(table)


def test_budget_validates_and_normalises() -> None:
    assert Budget(max_cost=0.5).max_cost == Decimal("0.5")  # type: ignore[arg-type]
    with pytest.raises(LLMConfigurationError, match=r"budget\.max_rows"):
        Budget(max_rows=-1)
    with pytest.raises(LLMConfigurationError, match=r"budget\.max_cost"):
        Budget(max_cost=Decimal("NaN"))


def test_api_key_reads_name_or_reference_and_never_shows_the_value() -> None:
    environ = {"MY_KEY": "sk-value-that-must-not-show"}
    for setting in ("MY_KEY", "${MY_KEY}"):
        key = ApiKey.from_environment(setting, environ=environ)
        assert key.reveal() == "sk-value-that-must-not-show"
        assert "sk-value" not in repr(key) + str(key) + f"{key}"
        assert key.redact("x sk-value-that-must-not-show y") == "x [redacted] y"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_api_key_errors_name_the_variable_but_not_a_pasted_key() -> None:
    with pytest.raises(LLMConfigurationError, match=r"MISSING_KEY.*not set"):
        ApiKey.from_environment("MISSING_KEY", environ={})
    with pytest.raises(LLMConfigurationError) as caught:
        ApiKey.from_environment("sk-pasted-secret-value", environ={})
    assert "sk-pasted" not in str(caught.value)
    assert "NAME of an environment variable" in str(caught.value)


def test_create_client_reports_unknown_provider_and_options() -> None:
    with pytest.raises(LLMConfigurationError, match=r"unknown LLM provider 'gpt'.*mock, openai"):
        create_client("gpt", {})
    with pytest.raises(LLMConfigurationError, match="unknown option\\(s\\) temprature"):
        create_client("mock", {"temprature": 1})
    with pytest.raises(
        LLMConfigurationError, match="missing required option\\(s\\) base_url, model"
    ):
        create_client("openai", {})
    with pytest.raises(LLMConfigurationError, match="must not contain credentials"):
        create_client("openai", {"base_url": "https://u:p@example.org/v1", "model": "m"})
    with pytest.raises(LLMConfigurationError, match="may not set messages"):
        create_client(
            "openai",
            {"base_url": "https://example.org/v1", "model": "m", "parameters": {"messages": 1}},
        )
    assert isinstance(create_client("mock", {"seed": 3}), MockClient)


def test_mock_answers_are_deterministic_per_seed_messages_and_repeat() -> None:
    messages = ({"role": "user", "content": "Rate this answer."},)
    first = MockClient(seed=1).answer(ChatRequest(messages, 0))
    assert first == MockClient(seed=1).answer(ChatRequest(messages, 0))
    answers = {
        MockClient(seed=seed).answer(ChatRequest(messages, repeat)).text
        for seed in range(4)
        for repeat in range(4)
    }
    assert len(answers) > 4  # seeds and repeats change answers
    parsed = json.loads(first.text)
    assert parsed["score"] in range(1, 6)
    assert isinstance(parsed["rationale"], str)
    assert parsed["rationale"]
    assert first.prompt_tokens > 0
    assert first.completion_tokens > 0
