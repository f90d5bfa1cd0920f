"""Redaction of settings before they are recorded in a report or a bundle.

A value is replaced by ``[redacted]`` when its key looks like it holds a secret, at any depth,
or when it came from an environment variable (the caller passes those key paths): the usual way a
secret reaches a settings file, under any key name.

A key looks secret when one of its words (split at ``_``, ``-``, ``.``, spaces and camelCase
humps, any case) is in :data:`SECRET_WORDS`, or its letters contain one of
:data:`SECRET_FRAGMENTS` (``clientSecret``, ``APIKEY``). Plural ``tokens`` is deliberately not
secret: ``max_tokens`` and ``prompt_tokens`` are counts that a reproduction needs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final

REDACTED: Final = "[redacted]"

SECRET_WORDS: Final = frozenset(
    {"key", "keys", "token", "auth", "authorization", "bearer", "cookie", "pwd"}
)
SECRET_FRAGMENTS: Final = (
    "apikey",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "accesstoken",
    "authtoken",
    "privatekey",
)

KeyPath = tuple[str | int, ...]

_HUMP: Final = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATOR: Final = re.compile(r"[^a-z0-9]+")


def is_secret_name(name: object) -> bool:
    """Whether a settings key called ``name`` may hold a secret."""
    words = [word for word in _SEPARATOR.split(_HUMP.sub(r"\1_\2", str(name)).lower()) if word]
    letters = "".join(words)
    return any(word in SECRET_WORDS for word in words) or any(
        fragment in letters for fragment in SECRET_FRAGMENTS
    )


def redact_secrets(
    mapping: Mapping[Any, Any], substituted: Collection[KeyPath] = ()
) -> dict[Any, Any]:
    """A copy of ``mapping`` with every secret-looking key's value, and every value at a path in
    ``substituted``, replaced by ``"[redacted]"``. ``None`` under a secret name stays ``None``:
    nothing was set."""
    redacted: dict[Any, Any] = _redacted(mapping, (), frozenset(substituted))
    return redacted


def _redacted(value: Any, path: KeyPath, substituted: frozenset[KeyPath]) -> Any:
    if path in substituted:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if is_secret_name(key) and item is not None
            else _redacted(item, (*path, key), substituted)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted(item, (*path, index), substituted) for index, item in enumerate(value)]
    return value
