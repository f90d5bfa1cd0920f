"""Modules imported on first use, so a command imports only what its settings need (a CSV suite
never pays for SQLAlchemy, a run without an Excel report never for XlsxWriter).

    if TYPE_CHECKING:
        import sqlalchemy as sa
    else:
        sa = lazy_module("sqlalchemy")

The first attribute read imports the module; later reads go straight to it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule:
    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not yet imported"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports it on the first attribute read."""
    return _LazyModule(name)
