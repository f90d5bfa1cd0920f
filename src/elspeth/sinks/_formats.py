"""The three output formats. Each writes frames' data, marked with a level, to a binary handle.

The writers do no release check, so nothing outside the sinks package calls them: every output
goes through :class:`~elspeth.sinks.Sink`, which checks each frame's clearance and seal first.
Messages never quote cell values: a value is content at the frame's level.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from elspeth.datasources import PARQUET_CLASSIFICATION_KEY, csv_banner, jsonl_header
from elspeth.security import SecurityLevel
from elspeth.sinks._config import CsvSinkConfig, JsonlSinkConfig, ParquetSinkConfig
from elspeth.sinks._errors import SinkError

FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
"""Text that spreadsheets may evaluate when a cell starts with one of these characters."""
FORMULA_GUARD: Final = "'"
_CSV_LINE_END: Final = "\r\n"
"""RFC 4180; it also makes the csv module quote any cell holding a bare CR or LF."""


def neutralise_formula(text: str) -> str:
    """``text`` with an apostrophe in front if a spreadsheet could take it for a formula."""
    return FORMULA_GUARD + text if text.startswith(FORMULA_PREFIXES) else text


def _neutralised(data: pd.DataFrame) -> pd.DataFrame:
    """Text cells and column names guarded; numbers, dates and booleans are never formulas."""
    guarded = {}
    for name, values in data.items():
        textual = pd.api.types.is_string_dtype(values.dtype) or isinstance(
            values.dtype, pd.CategoricalDtype
        )
        guarded[neutralise_formula(name) if isinstance(name, str) else name] = (
            values.astype(object).map(lambda v: neutralise_formula(v) if isinstance(v, str) else v)
            if textual
            else values
        )
    return pd.DataFrame(guarded, index=data.index)


def _write_csv(
    datas: Sequence[pd.DataFrame],
    handle: BinaryIO,
    level: SecurityLevel,
    config: CsvSinkConfig,
    destination: Path,
) -> int:
    text = io.TextIOWrapper(handle, encoding=config.encoding, newline="")
    text.write(csv_banner(level) + _CSV_LINE_END)
    columns = list(datas[0].columns)
    for position, data in enumerate(datas):
        _require_columns(list(data.columns), columns, position, destination)
        prepared = _neutralised(data) if config.neutralise_formulas else data
        prepared.to_csv(
            text,
            index=False,
            header=position == 0,
            sep=config.delimiter,
            lineterminator=_CSV_LINE_END,
        )
    text.flush()
    text.detach()
    return sum(len(data) for data in datas)


def _write_jsonl(
    datas: Sequence[pd.DataFrame],
    handle: BinaryIO,
    level: SecurityLevel,
    config: JsonlSinkConfig,
    destination: Path,
) -> int:
    def encode(record: Mapping[Any, Any]) -> bytes:
        line = json.dumps(record, ensure_ascii=False, allow_nan=False, default=_json_value)
        return (line + "\n").encode("utf-8")

    handle.write(encode(jsonl_header(level)))
    columns = list(datas[0].columns)
    for position, data in enumerate(datas):
        _require_columns(list(data.columns), columns, position, destination)
        plain = data.astype(object).where(data.notna(), None)
        for record in plain.to_dict(orient="records"):
            try:
                handle.write(encode(record))
            except (TypeError, ValueError) as error:
                raise SinkError(destination, f"JSONL cannot hold this data: {error}") from None
    return sum(len(data) for data in datas)


def _json_value(value: object) -> object:
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # a numpy scalar pandas left unboxed
        return value.item()
    raise TypeError(f"a {type(value).__name__} value has no JSON form")


def _write_parquet(
    datas: Sequence[pd.DataFrame],
    handle: BinaryIO,
    level: SecurityLevel,
    config: ParquetSinkConfig,
    destination: Path,
) -> int:
    columns = list(datas[0].columns)
    for position, data in enumerate(datas):
        _require_columns(list(data.columns), columns, position, destination)
    data = datas[0] if len(datas) == 1 else pd.concat(datas, ignore_index=True)
    # The index is the row's position in its chunk, not data: it is never written.
    table = pa.Table.from_pandas(data, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), PARQUET_CLASSIFICATION_KEY: level.name.encode()}
    table = table.replace_schema_metadata(metadata)
    pq.write_table(table, handle, compression=config.compression)
    return len(data)


def _require_columns(
    found: list[Any], expected: list[Any], position: int, destination: Path
) -> None:
    if found != expected:
        raise SinkError(
            destination,
            f"frame {position + 1} has columns {found}, but the first frame has {expected}; "
            f"every frame written to one file needs the same columns",
        )


Writer = Callable[[Sequence[pd.DataFrame], BinaryIO, SecurityLevel, Any, Path], int]

WRITERS: Final[Mapping[type[Any], tuple[str, str, Writer]]] = {
    CsvSinkConfig: ("csv", ".csv", _write_csv),
    JsonlSinkConfig: ("jsonl", ".jsonl", _write_jsonl),
    ParquetSinkConfig: ("parquet", ".parquet", _write_parquet),
}
"""Settings type → (format name, file suffix, writer)."""
