"""The contract every chat backend meets; the stage owns retries, limits, caching and costs."""

from __future__ import annotations

from typing import Protocol

from elspeth.llm._types import ChatRequest, Completion, EndpointIdentity


class ChatClient(Protocol):
    """One endpoint and model. ``complete`` makes exactly one attempt: it returns a well-formed
    :class:`Completion` or raises :class:`AttemptFailure` with a key-free detail."""

    @property
    def identity(self) -> EndpointIdentity: ...

    async def open(self, max_connections: int) -> None:
        """Prepare for up to ``max_connections`` concurrent requests on the running loop."""

    async def complete(self, request: ChatRequest) -> Completion: ...

    async def aclose(self) -> None:
        """Release connections; the client can be opened again later (on another loop too)."""
