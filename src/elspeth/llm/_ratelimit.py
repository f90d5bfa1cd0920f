"""Requests-per-minute and tokens-per-minute limits as async token buckets that wait."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from elspeth.llm._errors import LLMConfigurationError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """A bucket refilled at ``per_minute / 60`` per second, holding ``burst_seconds`` of refill.

    :meth:`take` waits until the amount is available. Waiters are served in arrival order (one
    lock), so a large request is not starved by small ones. An amount larger than the bucket waits
    for a full bucket and leaves it in debt, so later takers wait for the excess.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst_seconds: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not math.isfinite(per_minute) or per_minute <= 0:
            raise LLMConfigurationError(f"a rate limit must be a positive number, not {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self._clock = clock
        self._sleep = sleep
        self._level = self.capacity
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, amount: float) -> float:
        """Take ``amount`` (waiting as needed); return the seconds waited."""
        waited = 0.0
        needed = min(amount, self.capacity)
        async with self._lock:
            self._refill()
            while self._level < needed:
                pause = (needed - self._level) / self.rate
                await self._sleep(pause)
                waited += pause
                self._refill()
            self._level -= amount
        return waited

    def debit(self, amount: float) -> None:
        """Take ``amount`` without waiting (a correction after the fact; may go into debt)."""
        self._refill()
        self._level = min(self.capacity, self._level - amount)


class RateLimiter:
    """Both limits an endpoint imposes; share one instance between stages that share an endpoint.

    Token use is estimated before a request (prompt characters / 4 plus ``max_tokens``) and
    corrected with the real usage afterwards through :meth:`settle`.
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.requests = (
            None
            if requests_per_minute is None
            else TokenBucket(requests_per_minute, clock=clock, sleep=sleep)
        )
        self.tokens = (
            None
            if tokens_per_minute is None
            else TokenBucket(tokens_per_minute, clock=clock, sleep=sleep)
        )

    async def acquire(self, estimated_tokens: int) -> float:
        """Wait for one request's worth of both limits; return the seconds waited."""
        waited = 0.0
        if self.requests is not None:
            waited += await self.requests.take(1)
        if self.tokens is not None:
            waited += await self.tokens.take(estimated_tokens)
        return waited

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Charge (or refund) the difference between the estimate and the real usage."""
        if self.tokens is not None and actual_tokens != estimated_tokens:
            self.tokens.debit(actual_tokens - estimated_tokens)
