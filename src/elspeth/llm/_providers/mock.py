"""A deterministic stand-in for a model, for demos and tests: no network, no key, no cost.

The answer is a pure function of (seed, model, messages, repeat index): a JSON object with a
``score`` from 1 to 5 and a short ``rationale`` picked from a hash, which is what a scoring prompt
expects back; or, given ``replies``, one of them picked by the same hash (an answer such as
``low``, or a judge's reply ending in ``GRADE: CORRECT``). Token counts approximate a real
tokenizer (about four characters a token).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Final

import blake3

from elspeth.llm._cache import canonical_json
from elspeth.llm._errors import LLMConfigurationError
from elspeth.llm._types import ChatRequest, Completion, EndpointIdentity

_OPENINGS: Final = (
    "The response",
    "This answer",
    "The reply",
    "The text",
)
_JUDGEMENTS: Final = (
    "misses the main point of the request",
    "addresses the request only in part",
    "covers the essentials but lacks detail",
    "answers clearly with relevant detail",
    "answers completely, precisely and concisely",
)
_QUALIFIERS: Final = (
    "and would need another pass.",
    "though the tone is appropriate.",
    "with some unsupported claims.",
    "and stays on topic throughout.",
    "and cites the relevant facts.",
)


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


class MockClient:
    """``seed`` changes every answer; ``latency`` (seconds) simulates a slow endpoint."""

    provider = "mock"

    def __init__(
        self,
        *,
        seed: int = 0,
        model: str = "mock-scorer",
        latency: float = 0.0,
        replies: Sequence[str] | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise LLMConfigurationError(f"mock seed must be an integer, not {seed!r}")
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise LLMConfigurationError(f"mock latency must be seconds >= 0, not {latency!r}")
        if replies is not None and (
            not replies or not all(isinstance(reply, str) for reply in replies)
        ):
            raise LLMConfigurationError("mock replies must be a non-empty list of strings")
        self._seed = seed
        self._latency = float(latency)
        self._replies = None if replies is None else tuple(replies)
        # The replies are part of what the mock is: a cached answer of one list is not another's.
        identity = {"seed": seed} if replies is None else {"seed": seed, "replies": list(replies)}
        self._identity = EndpointIdentity(self.provider, "mock:", model, identity)

    @property
    def identity(self) -> EndpointIdentity:
        return self._identity

    async def open(self, max_connections: int) -> None:
        return None

    def answer(self, request: ChatRequest) -> Completion:
        """The completion for ``request`` (synchronous: the same function the async path uses)."""
        digest = blake3.blake3(
            canonical_json(
                {
                    "seed": self._seed,
                    "model": self._identity.model,
                    "messages": [dict(message) for message in request.messages],
                    "repeat": request.repeat,
                }
            )
        ).digest()
        score = digest[0] % 5 + 1
        rationale = (
            f"{_OPENINGS[digest[1] % len(_OPENINGS)]} {_JUDGEMENTS[score - 1]} "
            f"{_QUALIFIERS[digest[2] % len(_QUALIFIERS)]}"
        )
        text = (
            json.dumps({"score": score, "rationale": rationale})
            if self._replies is None
            else self._replies[int.from_bytes(digest[:4], "big") % len(self._replies)]
        )
        prompt_tokens = sum(estimate_tokens(m.get("content", "")) + 4 for m in request.messages)
        return Completion(text, prompt_tokens, estimate_tokens(text), "stop")

    async def complete(self, request: ChatRequest) -> Completion:
        if self._latency:
            await asyncio.sleep(self._latency)
        return self.answer(request)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"MockClient(seed={self._seed}, model={self._identity.model!r})"
