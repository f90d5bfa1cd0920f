"""Helpers the built-in plugins share: column lists in parameters, required columns, numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pandas as pd

OUTCOME_SUFFIX: Final = "_outcome"
"""The suite runner's ``<c>_outcome`` column of LLM criterion ``<c>``: ``ok`` or ``error``."""
ERROR_OUTCOME: Final = "error"
"""An infrastructure failure (timeout, 5xx, ...): no usable answer, as opposed to a bad one."""


def as_column_list(value: Any) -> Any:
    """Parameter shorthand: one column name stands for a list of one (pydantic ``before`` hook)."""
    return [value] if isinstance(value, str) else value


def distinct_names(names: list[str], what: str) -> list[str]:
    """``names`` unchanged, or a ValueError naming the first name given twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} lists {name!r} twice")
        seen.add(name)
    return names


def require_columns(data: pd.DataFrame, names: Iterable[str], role: str) -> None:
    """Raise KeyError naming every column in ``names`` that ``data`` lacks."""
    missing = [name for name in names if name not in data.columns]
    if missing:
        raise KeyError(f"{role} column(s) {missing} not in the frame")


def numeric(values: pd.Series[Any]) -> pd.Series[float]:
    """``values`` as float64: nulls, error rows' empty scores and non-numbers become NaN."""
    import pandas as pd

    return pd.to_numeric(values, errors="coerce").astype("float64")
