"""The LLM stage's errors: configuration mistakes apart from failures while running.

Messages name the setting, template or field to change and never contain an API key or row
content; per-request failures are not exceptions at all but ``error`` outcomes on a row result.
"""

from __future__ import annotations

from elspeth.errors import ConfigurationError, ElspethError


class LLMError(ElspethError):
    """The LLM stage could not run (not a single request's failure: those are row outcomes)."""


class LLMConfigurationError(ConfigurationError):
    """An LLM client, prompt, pricing or budget setting is invalid; the message names it."""


class TemplateError(LLMConfigurationError):
    """A prompt template does not compile, or references fields the dataset lacks."""


class PromptRenderError(LLMError):
    """A template failed on one row (a missing value or a refused sandbox operation)."""


class CacheError(LLMError):
    """The response cache cannot be used as configured (for example a directory others can read)."""
