"""Any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp, LiteLLM...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elspeth.llm._errors import LLMConfigurationError
from elspeth.llm._providers._http import (
    HttpChatClient,
    HttpTransport,
    check_base_url,
    check_timeout,
)
from elspeth.llm._secrets import ApiKey
from elspeth.llm._types import EndpointIdentity

#: Request fields the stage sets itself; parameters may not override them.
RESERVED_PARAMETERS = frozenset({"messages", "model", "stream", "n"})


def check_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    chosen = dict(parameters or {})
    clashes = sorted(RESERVED_PARAMETERS & set(chosen))
    if clashes:
        raise LLMConfigurationError(
            f"parameters may not set {', '.join(clashes)}: the LLM stage sets them itself"
        )
    return chosen


class OpenAIClient(HttpChatClient):
    """``base_url`` ends where the SDKs' does (``https://api.openai.com/v1``); the request goes
    to ``{base_url}/chat/completions`` with ``Authorization: Bearer <key>`` when a key is named.
    ``parameters`` (temperature, max_tokens, seed, top_p, ...) are sent as given."""

    provider = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise LLMConfigurationError("model must be a non-empty string")
        self._base_url = check_base_url(base_url, "base_url")
        self._key = None if api_key_env is None else ApiKey.from_environment(api_key_env)
        self._parameters = check_parameters(parameters)
        self._identity = EndpointIdentity(self.provider, self._base_url, model, self._parameters)
        headers = {} if self._key is None else {"Authorization": f"Bearer {self._key.reveal()}"}
        self._transport = HttpTransport(
            f"{self._base_url}/chat/completions",
            headers,
            check_timeout(timeout),
            self._key.redact if self._key is not None else str,
        )
        self._body: dict[str, Any] = {"model": model, **self._parameters}

    def __repr__(self) -> str:
        return f"OpenAIClient(base_url={self._base_url!r}, model={self._identity.model!r})"
