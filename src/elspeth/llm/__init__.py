"""The LLM stage: prompts rendered in a sandbox, chat completions with bounded concurrency,
retries, rate limits, a private response cache, and token and cost accounting.

Trusted I/O in the orchestrator: it sees row content and API keys, and hands back raw answer
text with an ``ok``/``error`` outcome per (row, criterion, repeat). Judging the answers (FAIL)
is for the validation plugins. See ``docs/llm.md``.
"""

from __future__ import annotations

from elspeth.llm._cache import ResponseCache, cache_key
from elspeth.llm._client import ChatClient
from elspeth.llm._errors import (
    CacheError,
    LLMConfigurationError,
    LLMError,
    PromptRenderError,
    TemplateError,
)
from elspeth.llm._grades import Grade, GradeScale
from elspeth.llm._pricing import Budget, ModelPrice, PricingTable
from elspeth.llm._prompts import CriterionPrompt, MissingField, PromptPack
from elspeth.llm._providers import PROVIDERS, create_client
from elspeth.llm._providers._options import (
    PROVIDER_OPTIONS,
    AzureOpenAIOptions,
    MockOptions,
    OpenAIOptions,
    ProviderOptions,
)
from elspeth.llm._providers.azure_openai import AzureOpenAIClient
from elspeth.llm._providers.mock import MockClient
from elspeth.llm._providers.openai import OpenAIClient
from elspeth.llm._ratelimit import RateLimiter, TokenBucket
from elspeth.llm._retry import RetryPolicy, parse_retry_after
from elspeth.llm._secrets import ApiKey
from elspeth.llm._stage import EARLY_STOP, LLMStage, OnResult, ShouldStop
from elspeth.llm._types import (
    RETRYABLE,
    AttemptFailure,
    AttemptRecord,
    ChatRequest,
    Completion,
    EndpointIdentity,
    ErrorKind,
    Outcome,
    RowResult,
    StageSummary,
)

__all__ = [
    "EARLY_STOP",
    "PROVIDERS",
    "PROVIDER_OPTIONS",
    "RETRYABLE",
    "ApiKey",
    "AttemptFailure",
    "AttemptRecord",
    "AzureOpenAIClient",
    "AzureOpenAIOptions",
    "Budget",
    "CacheError",
    "ChatClient",
    "ChatRequest",
    "Completion",
    "CriterionPrompt",
    "EndpointIdentity",
    "ErrorKind",
    "Grade",
    "GradeScale",
    "LLMConfigurationError",
    "LLMError",
    "LLMStage",
    "MissingField",
    "MockClient",
    "MockOptions",
    "ModelPrice",
    "OnResult",
    "OpenAIClient",
    "OpenAIOptions",
    "Outcome",
    "PricingTable",
    "PromptPack",
    "PromptRenderError",
    "ProviderOptions",
    "RateLimiter",
    "ResponseCache",
    "RetryPolicy",
    "RowResult",
    "ShouldStop",
    "StageSummary",
    "TemplateError",
    "TokenBucket",
    "cache_key",
    "create_client",
    "parse_retry_after",
]
