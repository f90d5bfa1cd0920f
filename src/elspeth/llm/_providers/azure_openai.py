"""Azure OpenAI: a deployment under a resource endpoint, an ``api-version`` and an ``api-key``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from elspeth.llm._errors import LLMConfigurationError
from elspeth.llm._providers._http import (
    HttpChatClient,
    HttpTransport,
    check_base_url,
    check_timeout,
)
from elspeth.llm._providers.openai import check_parameters
from elspeth.llm._secrets import ApiKey
from elspeth.llm._types import EndpointIdentity

_API_VERSION: Final = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class AzureOpenAIClient(HttpChatClient):
    """Requests go to
    ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={api_version}``
    with the key in the ``api-key`` header. ``model`` names the model for pricing (default: the
    deployment name)."""

    provider = "azure_openai"

    def __init__(
        self,
        *,
        endpoint: str,
        deployment: str,
        api_version: str,
        api_key_env: str,
        model: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> None:
        if not isinstance(deployment, str) or not deployment:
            raise LLMConfigurationError("deployment must be a non-empty string")
        if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
            raise LLMConfigurationError(
                f"api_version must look like 2024-06-01 or 2024-08-01-preview, not {api_version!r}"
            )
        base = check_base_url(endpoint, "endpoint")
        key = ApiKey.from_environment(api_key_env)
        chosen = check_parameters(parameters)
        self._identity = EndpointIdentity(
            self.provider, base, model or deployment, chosen, deployment=deployment
        )
        url = (
            f"{base}/openai/deployments/{quote(deployment, safe='')}/chat/completions"
            f"?api-version={api_version}"
        )
        self._transport = HttpTransport(
            url, {"api-key": key.reveal()}, check_timeout(timeout), key.redact
        )
        self._body = chosen

    def __repr__(self) -> str:
        return (
            f"AzureOpenAIClient(endpoint={self._identity.endpoint!r}, "
            f"deployment={self._identity.deployment!r})"
        )
