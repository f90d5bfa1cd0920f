"""Retry policy: exponential backoff with full jitter, honouring the server's ``Retry-After``."""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping

from elspeth.llm._errors import LLMConfigurationError


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait before asking again.

    ``max_retries`` counts retries, so ``0`` means exactly one attempt. The n-th retry waits a
    uniformly random time in ``[0, min(max_backoff, initial_backoff * 2**(n-1))]`` ("full jitter":
    clients that failed together do not retry together) unless the server sent ``Retry-After``,
    which wins, capped at ``retry_after_cap`` so that a hostile or confused server cannot park the
    run for hours.
    """

    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise LLMConfigurationError(
                f"retry max_retries must be an integer, not {self.max_retries!r}"
            )
        if self.max_retries < 0:
            raise LLMConfigurationError(f"retry max_retries must be >= 0, not {self.max_retries}")
        for name in ("initial_backoff", "max_backoff", "retry_after_cap"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise LLMConfigurationError(f"retry {name} must be a number >= 0, not {value!r}")

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (retry_number - 1))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asked us to wait, or ``None`` when it did not say (or said nonsense).

    Reads ``retry-after-ms`` (sent by OpenAI) and ``Retry-After`` as seconds or an HTTP date.
    A date in the past means "now".
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        seconds = _non_negative_float(millis)
        if seconds is not None:
            return seconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_float(value)
    if seconds is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now())


def _non_negative_float(text: str) -> float | None:
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
