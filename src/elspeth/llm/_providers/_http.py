"""The HTTP transport the OpenAI-compatible backends share: one aiohttp session per endpoint.

aiohttp was chosen by measurement (issue 5): on these 2-core machines it reached about 81 % of the
ideal fan-out wall time at 0.3 ms CPU per request, httpx 0.28 about 12 %. The request path is kept
lean: the body is serialised once with ``json.dumps``, headers are prepared once, the timeout lives
on the session, and the response is read as bytes and parsed with ``json.loads``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from elspeth._lazy import lazy_module
from elspeth.llm._errors import LLMConfigurationError
from elspeth.llm._retry import parse_retry_after
from elspeth.llm._types import (
    AttemptFailure,
    ChatRequest,
    Completion,
    EndpointIdentity,
    ErrorKind,
    kind_for_status,
)

if TYPE_CHECKING:
    import aiohttp
else:  # about 0.3 s of import (its TLS contexts among it) that a mock-model suite never needs
    aiohttp = lazy_module("aiohttp")

_SAFE_CODE_CHARACTERS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)


def check_base_url(url: str, setting: str) -> str:
    """An http(s) URL without credentials in it (keys belong in the environment)."""
    if not isinstance(url, str):
        raise LLMConfigurationError(f"{setting} must be a URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LLMConfigurationError(f"{setting} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise LLMConfigurationError(
            f"{setting} must not contain credentials; name the key's variable in api_key_env"
        )
    if parts.query or parts.fragment:
        raise LLMConfigurationError(f"{setting} must not have a query string or fragment")
    return url.rstrip("/")


def check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise LLMConfigurationError(f"timeout must be a number of seconds > 0, not {timeout!r}")
    return float(timeout)


def parse_chat_completion(raw: bytes, status: int = 200) -> Completion:
    """Read an OpenAI chat completion body; anything unexpected is ``MALFORMED_RESPONSE``."""
    try:
        body = json.loads(raw)
        choice = body["choices"][0]
        text = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise AttemptFailure(
            ErrorKind.MALFORMED_RESPONSE,
            f"response is not a chat completion ({type(exc).__name__})",
            status=status,
        ) from None
    if not isinstance(text, str):
        raise AttemptFailure(
            ErrorKind.MALFORMED_RESPONSE, "response message content is not text", status=status
        )
    finish_reason = choice.get("finish_reason")
    usage = _usage(body.get("usage"))
    if usage is None:
        return Completion(text, 0, max(1, len(text) // 4), finish_reason, True, status)
    return Completion(text, usage[0], usage[1], finish_reason, False, status)


def _usage(usage: Any) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` when the endpoint reported both sensibly."""
    if not isinstance(usage, dict):
        return None
    counts = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
    if all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        return counts  # type: ignore[return-value]
    return None


def _error_code(raw: bytes) -> str:
    """The ``error.code`` or ``error.type`` of an error body, if short and plain.

    Only these identifiers are kept: error messages can echo the key ("Incorrect API key
    provided: sk-...") or the prompt.
    """
    try:
        error = json.loads(raw).get("error", {})
        code = error.get("code") or error.get("type")
    except (ValueError, AttributeError):
        return ""
    if isinstance(code, str) and 0 < len(code) <= 64 and set(code) <= _SAFE_CODE_CHARACTERS:
        return f" ({code})"
    return ""


class HttpTransport:
    """POSTs JSON to one URL through a session created on (and bound to) the running loop."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: float,
        redact: Callable[[str], str],
    ) -> None:
        self._url = url
        self._headers = {**headers, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._redact = redact
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit = 100

    async def open(self, max_connections: int) -> None:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed and self._loop is loop:
            if max_connections <= self._limit:
                return
            await session.close()
        # A session left on another (finished) loop cannot be closed from here; it is dropped.
        self._limit = max(1, max_connections)
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=self._headers,
            skip_auto_headers=("User-Agent",),
            raise_for_status=False,
        )
        self._loop = loop

    async def post(self, body: Mapping[str, Any]) -> Completion:
        if self._session is None or self._loop is not asyncio.get_running_loop():
            await self.open(self._limit)
        assert self._session is not None
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            async with self._session.post(self._url, data=payload) as response:
                status = response.status
                raw = await response.read()
                headers = response.headers
        except TimeoutError:
            raise AttemptFailure(
                ErrorKind.TIMEOUT, f"no complete response within {self._timeout_seconds:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise AttemptFailure(
                ErrorKind.CONNECTION, self._redact(f"{type(exc).__name__}: {exc}")
            ) from None
        if not 200 <= status < 300:
            kind = kind_for_status(status)
            raise AttemptFailure(
                kind,
                self._redact(f"HTTP {status}{_error_code(raw)}"),
                status=status,
                retry_after=parse_retry_after(headers)
                if kind is not ErrorKind.CLIENT_ERROR
                else None,
            )
        return parse_chat_completion(raw, status)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()


class HttpChatClient:
    """What the HTTP backends share once they have built their transport, identity and body."""

    _identity: EndpointIdentity
    _transport: HttpTransport
    _body: dict[str, Any]

    @property
    def identity(self) -> EndpointIdentity:
        return self._identity

    async def open(self, max_connections: int) -> None:
        await self._transport.open(max_connections)

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._transport.post({**self._body, "messages": request.messages})

    async def aclose(self) -> None:
        await self._transport.aclose()
