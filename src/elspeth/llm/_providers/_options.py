"""Each provider's options as a strict schema, so settings are checked when they are loaded.

The clients check their arguments again when they are created (the library can be used without
settings); these models run the same checks earlier, with the key that is wrong, and refuse
unknown keys. Nothing here reads an API key: ``api_key_env`` is checked to be a variable *name*.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from elspeth.llm._errors import LLMConfigurationError
from elspeth.llm._providers._http import check_base_url
from elspeth.llm._providers.openai import check_parameters
from elspeth.llm._secrets import key_variable

API_VERSION: Final = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _checked(check: Callable[[Any], object]) -> Callable[[Any], Any]:
    """A validator that runs a client's own check and keeps the value as written."""

    def validate(value: Any) -> Any:
        try:
            check(value)
        except LLMConfigurationError as error:
            raise ValueError(str(error)) from None
        return value

    return validate


def _quoted_version(value: Any) -> Any:
    """YAML reads an unquoted ``2024-06-01`` as a date; say so, and how to write it."""
    if isinstance(value, dt.date):
        text = value.isoformat() if not isinstance(value, dt.datetime) else value.date().isoformat()
        raise ValueError(
            f'YAML reads the unquoted {text} as a date, not text; quote it: api_version: "{text}"'
        )
    return value


def _version(value: str) -> str:
    if not API_VERSION.match(value):
        raise ValueError(f"must look like 2024-06-01 or 2024-08-01-preview, not {value!r}")
    return value


Integer = Annotated[int, BeforeValidator(_not_a_boolean)]
Seconds = Annotated[float, BeforeValidator(_not_a_boolean), Field(gt=0)]
KeyVariable = Annotated[str, AfterValidator(_checked(key_variable))]
Parameters = Annotated[
    dict[str, Any] | None,
    AfterValidator(_checked(check_parameters)),
    Field(description="Request fields sent as given (temperature, max_tokens, seed, top_p...)."),
]


def _url(setting: str) -> Any:
    return AfterValidator(_checked(lambda value: check_base_url(value, setting)))


class ProviderOptions(BaseModel):
    """What every provider's options share: strict keys, and the name its price is under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def price_name(self) -> str:
        """The model name ``pricing`` is keyed by."""
        raise NotImplementedError


class MockOptions(ProviderOptions):
    """The deterministic offline model (:class:`~elspeth.llm.MockClient`)."""

    seed: Integer = 0
    model: str = Field(default="mock-scorer", min_length=1)
    latency: Annotated[float, BeforeValidator(_not_a_boolean), Field(ge=0)] = 0.0
    replies: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="Canned replies; each request gets one, picked by the same hash as the "
        "score (default: a JSON score and rationale).",
    )

    @property
    def price_name(self) -> str:
        return self.model


class OpenAIOptions(ProviderOptions):
    """Any OpenAI-compatible endpoint (:class:`~elspeth.llm.OpenAIClient`)."""

    base_url: Annotated[str, _url("base_url")]
    model: str = Field(min_length=1)
    api_key_env: KeyVariable | None = None
    parameters: Parameters = None
    timeout: Seconds = 60.0

    @property
    def price_name(self) -> str:
        return self.model


class AzureOpenAIOptions(ProviderOptions):
    """An Azure OpenAI deployment (:class:`~elspeth.llm.AzureOpenAIClient`)."""

    endpoint: Annotated[str, _url("endpoint")]
    deployment: str = Field(min_length=1)
    api_version: Annotated[str, BeforeValidator(_quoted_version), AfterValidator(_version)]
    api_key_env: KeyVariable
    model: str | None = Field(
        default=None,
        min_length=1,
        description="The model's name for pricing (default: the deployment).",
    )
    parameters: Parameters = None
    timeout: Seconds = 60.0

    @property
    def price_name(self) -> str:
        return self.model or self.deployment


PROVIDER_OPTIONS: Final[Mapping[str, type[ProviderOptions]]] = {
    "mock": MockOptions,
    "openai": OpenAIOptions,
    "azure_openai": AzureOpenAIOptions,
}
"""Each provider's options schema, by the name settings use for the provider."""
