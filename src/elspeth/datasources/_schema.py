"""Checking and converting a chunk of raw rows against the declared ``columns``.

Text formats (CSV) hand over strings; typed formats (JSONL, Parquet, SQL) hand over values that
already have a type. Each declared type has a text parser and a typed-value test in the tables
below; a value that fits neither is reported by column and line (or row), never by its content.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from elspeth.datasources._config import ColumnType, ExtraColumns
from elspeth.datasources._errors import DatasourceSchemaError

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_BOOLEAN_TEXTS: Final = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Rows as a reader produced them, with where each row came from for error messages."""

    data: pd.DataFrame
    first_row: int
    """Ordinal of the chunk's first row in the whole source (0 for the first chunk)."""
    lines: tuple[int, ...] | None
    """The source line each row starts on, for line-oriented formats."""
    from_text: bool
    """True when every value is still the text the file held (CSV)."""

    def where(self, position: int) -> str:
        if self.lines is not None:
            return f"line {self.lines[position]}"
        return f"row {self.first_row + position + 1}"


def _parse_integer(text: str) -> int:
    value = int(text.strip())
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError("out of the 64-bit range")
    return value


def _parse_float(text: str) -> float:
    return float(text.strip())


def _parse_boolean(text: str) -> bool:
    return _BOOLEAN_TEXTS[text.strip().lower()]


def _is_integer(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    return isinstance(value, float) and value.is_integer()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class _TypeRule:
    dtype: str
    parse_text: Callable[[str], Any]
    accepts: Callable[[object], bool]
    convert: Callable[[Any], Any]
    text_problem: str


_TYPE_RULES: Final[Mapping[ColumnType, _TypeRule]] = {
    ColumnType.STRING: _TypeRule("str", str, lambda v: isinstance(v, str), str, ""),
    ColumnType.INTEGER: _TypeRule(
        "Int64", _parse_integer, _is_integer, int, "text that is not a 64-bit integer"
    ),
    ColumnType.FLOAT: _TypeRule(
        "float64", _parse_float, _is_number, float, "text that is not a number"
    ),
    ColumnType.BOOLEAN: _TypeRule(
        "boolean",
        _parse_boolean,
        lambda v: isinstance(v, bool),
        bool,
        "text that is not true, false, 1 or 0",
    ),
}


def conform(
    chunk: RawChunk,
    columns: Mapping[str, ColumnType] | None,
    extra: ExtraColumns,
    source: str,
) -> pd.DataFrame:
    """The chunk's data with exactly the declared columns, in declared order and types."""
    data = chunk.data
    if columns is None:
        return data
    present = [str(name) for name in data.columns]
    missing = [name for name in columns if name not in present]
    if missing:
        raise DatasourceSchemaError(
            source,
            f"declared column(s) {', '.join(map(repr, missing))} not found; "
            f"the data has {', '.join(map(repr, present))}",
        )
    undeclared = [name for name in present if name not in columns]
    if undeclared and extra is ExtraColumns.ERROR:
        raise DatasourceSchemaError(
            source,
            f"column(s) {', '.join(map(repr, undeclared))} not declared in 'columns'; declare "
            f"them or set extra_columns to 'drop' or 'keep'",
        )
    converted = {
        name: _convert(chunk, name, declared, source) for name, declared in columns.items()
    }
    if extra is ExtraColumns.KEEP:
        converted.update((name, data[name]) for name in undeclared)
    return pd.DataFrame(converted, index=data.index)


def _convert(chunk: RawChunk, name: str, declared: ColumnType, source: str) -> pd.Series[Any]:
    values = chunk.data[name]
    if declared is ColumnType.DATETIME:
        return _convert_datetimes(chunk, name, values, source)
    rule = _TYPE_RULES[declared]
    present = values.notna().to_numpy()
    converted: list[Any] = []
    for position, (value, is_present) in enumerate(zip(values.tolist(), present, strict=True)):
        if not is_present:
            converted.append(None)
            continue
        try:
            if chunk.from_text:
                converted.append(rule.parse_text(value))
            elif rule.accepts(value):
                converted.append(rule.convert(value))
            else:
                raise _mismatch(source, name, declared, chunk.where(position), _typed(value))
        except (ValueError, KeyError):
            raise _mismatch(
                source, name, declared, chunk.where(position), rule.text_problem
            ) from None
    return pd.Series(converted, index=values.index, name=name, dtype=rule.dtype)


def _convert_datetimes(
    chunk: RawChunk, name: str, values: pd.Series[Any], source: str
) -> pd.Series[Any]:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    present = values.notna().to_numpy()
    is_text = np.fromiter((isinstance(v, str) for v in values.tolist()), bool, len(values))
    wrong_type = present & ~is_text
    if wrong_type.any():
        position = int(np.argmax(wrong_type))
        raise _mismatch(
            source,
            name,
            ColumnType.DATETIME,
            chunk.where(position),
            _typed(values.iloc[position]),
        )
    try:
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):
        raise DatasourceSchemaError(
            source,
            f"column {name!r} is declared datetime but mixes time zones; use one offset or UTC",
        ) from None
    unparsed = present & parsed.isna().to_numpy()
    if unparsed.any():
        position = int(np.argmax(unparsed))
        raise _mismatch(
            source, name, ColumnType.DATETIME, chunk.where(position), "text that is not ISO 8601"
        )
    return parsed


def _typed(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "a NaN value"
    return f"a {type(value).__name__} value"


def _mismatch(
    source: str, name: str, declared: ColumnType, where: str, found: str
) -> DatasourceSchemaError:
    return DatasourceSchemaError(
        source, f"column {name!r} is declared {declared.value}, but {where} holds {found}"
    )
