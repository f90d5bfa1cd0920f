"""The loopback test server itself: failures in set proportions, repeatable with a seed, and
hangs that never hold up shutdown."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time

import aiohttp
import pytest

from tests.support.fixtures import MakeServer
from tests.support.openai_server import (
    FailureKind,
    FailureMix,
    OpenAIServer,
    ServerConfig,
    serve_in_subprocess,
)

pytestmark = pytest.mark.integration

SHARES = {"500": 0.2, "400": 0.1, "429": 0.1, "malformed": 0.1, "hang": 0.05}
REQUESTS = 400
#: Over 400 draws the standard deviation of a share is at most 0.025; three of them.
TOLERANCE = 0.075
#: A hung request's client gives up after this; the server keeps it hanging until it stops.
CLIENT_TIMEOUT = 0.5


async def _fire(
    base_url: str, count: int, concurrency: int, client_timeout: float = CLIENT_TIMEOUT
) -> collections.Counter[str]:
    """``count`` chat completions, ``concurrency`` at a time; what each one got back."""
    outcomes: collections.Counter[str] = collections.Counter()
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    queue = iter(range(count))
    timeout = aiohttp.ClientTimeout(total=client_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            for _ in queue:
                try:
                    async with session.post(f"{base_url}/chat/completions", json=body) as reply:
                        raw = await reply.read()
                        outcome = str(reply.status)
                        if reply.status == 429:
                            assert reply.headers["Retry-After"] == "0"
                        if reply.status == 200:
                            try:
                                json.loads(raw)
                            except ValueError:
                                outcome = "malformed"
                except TimeoutError:
                    outcome = "timeout"
                outcomes[outcome] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def _expected(mix: FailureMix, seed: int, count: int) -> collections.Counter[FailureKind]:
    """The kinds the first ``count`` requests draw: one number each from ``Random(seed)``."""
    generator = random.Random(seed)
    drawn = (mix.draw(generator.random()) for _ in range(count))
    return collections.Counter(kind for kind in drawn if kind is not None)


def test_failures_come_in_their_set_proportions_repeatably() -> None:
    mix = FailureMix.of(SHARES, retry_after="0")
    config = ServerConfig(mix=mix, seed=11)
    server = OpenAIServer(config).start()
    try:
        outcomes = asyncio.run(_fire(server.base_url, REQUESTS, concurrency=40))
    finally:
        stopping = time.monotonic()
        server.stop()
    assert time.monotonic() - stopping < 3.0, "hung requests held up the server's shutdown"

    served = server.stats.failures
    # Deterministic: the n-th request draws the n-th number of Random(seed), whatever the order.
    assert served == _expected(mix, 11, REQUESTS)
    for kind in FailureKind:
        share = served[kind] / REQUESTS
        assert abs(share - mix.share(kind)) <= TOLERANCE, (kind, share)
    # What the client saw matches what the server says it served.
    assert server.stats.request_count == REQUESTS
    assert outcomes["500"] == served[FailureKind.SERVER_ERROR]
    assert outcomes["400"] == served[FailureKind.BAD_REQUEST]
    assert outcomes["429"] == served[FailureKind.RATE_LIMITED]
    assert outcomes["malformed"] == served[FailureKind.MALFORMED]
    assert outcomes["timeout"] == served[FailureKind.HANG]
    assert outcomes["200"] == REQUESTS - sum(served.values())
    # Every hang ended when the server stopped, with a 503.
    assert server.stats.in_flight == 0
    assert server.stats.statuses[503] == served[FailureKind.HANG]


def test_another_seed_draws_another_sequence() -> None:
    mix = FailureMix.of(SHARES)
    assert _expected(mix, 1, REQUESTS) != _expected(mix, 2, REQUESTS)


def test_the_mix_is_checked() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        FailureMix(server_error=0.7, hang=0.4)
    with pytest.raises(ValueError, match="unknown failure kind"):
        FailureMix.of({"503": 0.1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FailureMix(malformed=-0.1)
    assert ServerConfig(mix={"hang": 0.5}).mix == FailureMix(hang=0.5)


def test_a_hang_ends_when_the_lifetime_runs_out(make_server: MakeServer) -> None:
    server = make_server(mix={"hang": 1.0}, lifetime=1.0)
    outcomes = asyncio.run(_fire(server.base_url, 3, concurrency=3))
    assert outcomes == {"timeout": 3}
    deadline = time.monotonic() + 5.0
    while server.stats.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats.in_flight == 0
    assert server.stats.failures == {FailureKind.HANG: 3}


def test_the_subprocess_takes_the_mix_as_flags() -> None:
    mix = FailureMix(server_error=0.25, rate_limited=0.25, retry_after="0", hang=0.1)
    with serve_in_subprocess(0.0, mix=mix, seed=5) as server:
        # A longer client timeout than in-process: on a loaded machine (CI runs the dev image's
        # suite beside the rest) a request that is not a hang must never time out before the
        # subprocess has drawn its reply, or the draws would not be the first 60.
        outcomes = asyncio.run(_fire(server.base_url, 60, concurrency=10, client_timeout=3.0))
    assert server.stats["request_count"] == 60
    expected = _expected(mix, 5, 60)
    assert server.stats["failures"] == {kind.value: expected[kind] for kind in FailureKind}
    assert outcomes["timeout"] == expected[FailureKind.HANG]
    assert outcomes["500"] == expected[FailureKind.SERVER_ERROR]
