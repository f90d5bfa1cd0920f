"""Elspeth: LLM experiment suites over classified data, with labels that cannot flow down.

This package's ``__init__`` stays import-light on purpose: a plugin worker imports ``elspeth``
before it sandboxes itself, and importing pandas or pyarrow would start threads that the sandbox
could not cover. Public names are re-exported lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "SecurityLevel": "elspeth.security",
    "SecureDataFrame": "elspeth.security",
    "ElspethError": "elspeth.errors",
    "ConfigurationError": "elspeth.errors",
}

__all__ = [
    "ConfigurationError",
    "ElspethError",
    "SecureDataFrame",
    "SecurityLevel",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'elspeth' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
