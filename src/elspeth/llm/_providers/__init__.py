"""The chat backends, by the name settings use for them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from elspeth.llm._client import ChatClient
from elspeth.llm._errors import LLMConfigurationError
from elspeth.llm._providers.azure_openai import AzureOpenAIClient
from elspeth.llm._providers.mock import MockClient
from elspeth.llm._providers.openai import OpenAIClient

PROVIDERS: Final[Mapping[str, Callable[..., ChatClient]]] = {
    "mock": MockClient,
    "openai": OpenAIClient,
    "azure_openai": AzureOpenAIClient,
}


def create_client(provider: str, options: Mapping[str, Any]) -> ChatClient:
    """Build a client from settings; unknown providers and unknown or missing options are
    reported by name (option values are not echoed: one of them may be a pasted key)."""
    factory = PROVIDERS.get(provider)
    if factory is None:
        raise LLMConfigurationError(
            f"unknown LLM provider {provider!r}; accepted: {', '.join(PROVIDERS)}"
        )
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise LLMConfigurationError(
            f"{provider}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )
    missing = sorted(
        name
        for name, parameter in accepted.items()
        if parameter.default is inspect.Parameter.empty and name not in options
    )
    if missing:
        raise LLMConfigurationError(f"{provider}: missing required option(s) {', '.join(missing)}")
    return factory(**options)
