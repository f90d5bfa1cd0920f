"""Frames for the digest tests: vector descriptions, a sample, a large frame, their streams.

The description format is documented in docs/canonical-digest.md ("Test vectors"). Every column
names its dtype explicitly, so a vector means the same frame whatever pandas would infer.
"""

from __future__ import annotations

import decimal
import re
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from elspeth.security._digest import _feed_frame, _feed_table

_FLOAT_WORDS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "-0.0": -0.0}
_DECIMAL = re.compile(r"decimal(32|64|128|256)\((\d+),(\d+)\)")
_ARROW_TYPES: dict[str, Any] = {
    "double": pa.float64(),
    "float": pa.float32(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "date32": pa.date32(),
    "date64": pa.date64(),
    "string_view": pa.string_view(),
    "large_string": pa.large_string(),
    "time64[ns]": pa.time64("ns"),
    "time32[ms]": pa.time32("ms"),
}


class _Collector:
    """A sink that keeps the canonical stream instead of hashing it."""

    def __init__(self) -> None:
        self.data = bytearray()

    def update(self, data: Any) -> None:
        self.data += data


def stream_of_frame(frame: pd.DataFrame) -> bytes:
    """The bytes canonical_digest hashes for ``frame``."""
    sink = _Collector()
    _feed_frame(sink, frame)
    return bytes(sink.data)


def stream_of_table(table: pa.Table) -> bytes:
    """The bytes canonical_digest_table hashes for ``table``."""
    sink = _Collector()
    _feed_table(sink, table)
    return bytes(sink.data)


def decode_float(value: object) -> object:
    """A JSON float, or one of the spellings JSON has no literal for."""
    if isinstance(value, str):
        if value.startswith("bits:"):
            return struct.unpack(">d", bytes.fromhex(value.removeprefix("bits:")))[0]
        return _FLOAT_WORDS[value]
    return value


def _arrow_type(spelling: str) -> Any:
    decimal_match = _DECIMAL.fullmatch(spelling)
    if decimal_match:
        width, precision, scale = (int(group) for group in decimal_match.groups())
        factory = {32: pa.decimal32, 64: pa.decimal64, 128: pa.decimal128, 256: pa.decimal256}
        return factory[width](precision, scale)
    return _ARROW_TYPES[spelling]


def _arrow_values(arrow_type: Any, values: list[Any]) -> list[Any]:
    decoders: list[tuple[Callable[[Any], bool], Callable[[Any], object]]] = [
        (pa.types.is_floating, decode_float),
        (pa.types.is_decimal, decimal.Decimal),
        (_any_binary, bytes.fromhex),
        (pa.types.is_date, lambda text: pd.Timestamp(text).date()),
        (pa.types.is_time, lambda text: pd.Timestamp(f"1970-01-01T{text}").time()),
    ]
    for matches, decode in decoders:
        if matches(arrow_type):
            return [None if value is None else decode(value) for value in values]
    return values


def _any_binary(arrow_type: Any) -> bool:
    return bool(pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type))


def values_from_description(column: dict[str, Any]) -> pd.Series[Any]:
    """One column (or index level) of a description as a pandas Series."""
    dtype: str = column["dtype"]
    values: list[Any] = column["values"]
    if dtype.startswith("arrow:"):
        arrow_type = _arrow_type(dtype.removeprefix("arrow:"))
        array = pa.array(_arrow_values(arrow_type, values), type=arrow_type)
        return pd.Series(pd.arrays.ArrowExtensionArray(array))
    if dtype == "category":
        categorical = pd.CategoricalDtype(column.get("categories"), column.get("ordered", False))
        return pd.Series(values, dtype=categorical)
    if dtype.lower().startswith("float"):
        return pd.Series([None if v is None else decode_float(v) for v in values], dtype=dtype)
    return pd.Series(values, dtype=dtype)


def frame_from_description(description: dict[str, Any]) -> pd.DataFrame:
    """The DataFrame a vector describes (see docs/canonical-digest.md)."""
    columns = description["columns"]
    series = [values_from_description(column) for column in columns]
    frame = pd.concat(series, axis=1) if series else pd.DataFrame(index=pd.RangeIndex(0))
    frame.columns = [column["name"] for column in columns] if columns else frame.columns
    index = description.get("index")
    if index is None:
        return frame
    if "range" in index:
        start, stop, step = index["range"]
        frame.index = pd.RangeIndex(start, stop, step, name=index.get("name"))
        return frame
    levels = [pd.Index(values_from_description(level)) for level in index["levels"]]
    names = [level["name"] for level in index["levels"]]
    if len(levels) == 1:
        frame.index = levels[0].rename(names[0])
    else:
        frame.index = pd.MultiIndex.from_arrays(levels, names=names)
    return frame


def sample_frame() -> pd.DataFrame:
    """Four rows, one column of each common dtype, nulls in several of them."""
    return pd.DataFrame(
        {
            "id": pd.Series([1, 2, 3, 4], dtype="int64"),
            "small": pd.Series([1, -2, 3, -4], dtype="int8"),
            "score": [0.5, np.nan, -1.25, 3.0],
            "ratio": pd.Series([0.5, 1.5, 2.5, 3.5], dtype="float32"),
            "flag": [True, False, True, True],
            "text": ["alpha", None, "gamma", "δέλτα"],
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
            "when": pd.Series(
                ["2024-01-01", "2024-02-01", None, "2024-04-01"], dtype="datetime64[us, UTC]"
            ),
            "colour": pd.Categorical(["red", "blue", "red", None]),
            "wait": pd.to_timedelta([1, 2, 3, None], unit="s"),
        }
    )


def large_random_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """Reproducible numeric and string columns (pandas ``str`` and ``object``) of any length."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "key": np.arange(rows, dtype=np.int64),
            "amount": rng.normal(size=rows),
            "ratio": rng.random(rows).astype(np.float32),
            "bucket": rng.integers(0, 100, rows).astype(np.int32),
            "label": pd.Series(rng.integers(0, 10**6, rows)).map("item-{}".format).astype(str),
            "note": pd.Series(rng.integers(0, 1000, rows).astype(str), dtype=object),
        }
    )
