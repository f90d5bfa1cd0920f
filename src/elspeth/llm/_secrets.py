"""API keys read from the environment, held so that they cannot be printed by accident."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final

from elspeth.llm._errors import LLMConfigurationError

_REFERENCE: Final = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REDACTED: Final = "[redacted]"


def key_variable(setting: Any, *, owner: str = "api_key_env") -> str:
    """The variable name ``setting`` gives (``NAME`` or ``${NAME}``), without reading it.

    Refuses anything else without echoing it: the setting may be a pasted key.
    """
    if not isinstance(setting, str):
        raise LLMConfigurationError(
            f"{owner} must name an environment variable, not a {type(setting).__name__}"
        )
    reference = _REFERENCE.match(setting.strip())
    variable = reference.group(1) if reference else setting.strip()
    if not _NAME.match(variable):
        raise LLMConfigurationError(
            f"{owner} must be the NAME of an environment variable (e.g. OPENAI_API_KEY or "
            "${OPENAI_API_KEY}), not the key itself; the value given is not a variable name"
        )
    return variable


class ApiKey:
    """A key taken from an environment variable; only :meth:`reveal` returns its value.

    ``repr`` and ``str`` show the variable's name, never the value, so a key that ends up in a
    log call, an f-string or a traceback's locals display shows where it came from and nothing else.
    """

    __slots__ = ("_value", "variable")

    def __init__(self, variable: str, value: str) -> None:
        self.variable = variable
        self._value = value

    @classmethod
    def from_environment(
        cls, setting: str, *, environ: Mapping[str, str] | None = None, owner: str = "api_key_env"
    ) -> ApiKey:
        """Read the variable that ``setting`` names (``NAME`` or ``${NAME}``)."""
        variable = key_variable(setting, owner=owner)
        value = (os.environ if environ is None else environ).get(variable, "")
        if not value:
            raise LLMConfigurationError(
                f"environment variable {variable} (named by {owner}) is not set or is empty"
            )
        return cls(variable, value)

    def reveal(self) -> str:
        """The key itself, for the request header and for redaction only."""
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced: a last line of defence."""
        return text.replace(self._value, _REDACTED) if self._value else text

    def __repr__(self) -> str:
        return f"ApiKey(variable={self.variable!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("an ApiKey cannot be pickled; pass the variable name instead")
