"""The canonical frame digest: BLAKE3 over a documented, deterministic byte stream.

``docs/canonical-digest.md`` specifies the stream byte for byte; this module and that document
change together, and any change to the bytes is a new :data:`DIGEST_VERSION`.

A frame is digested as Arrow data: the DataFrame path converts each column (and a non-default
index) with ``pyarrow.Array.from_pandas`` and then shares every step with the Arrow path, which is
why a DataFrame and the table it converts to give the same digest. Values are fed to BLAKE3 as whole
numpy/Arrow buffers; there is no per-row Python code.
"""

from __future__ import annotations

import enum
import json
import re
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import blake3
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from elspeth.security._authority import DIGEST_SIZE
from elspeth.security._errors import DigestError, UnsupportedColumnError

DIGEST_VERSION: Final = "elspeth-frame-digest-v1"
"""First bytes of every canonical stream (domain separation); bumped on any change of layout."""

_U64: Final = struct.Struct("<Q")
_NAME_ABSENT: Final = b"\x00"
_NAME_PRESENT: Final = b"\x01"
_GENERATED_INDEX_NAME: Final = re.compile(r"__index_level_\d+__")

_SUPPORTED_TYPES: Final = (
    "supported: bool, int8..int64, uint8..uint64, float16/32/64, str (utf8), bytes (binary), "
    "fixed-size binary, date32, date64, time32/time64, timestamp (any unit, with or without "
    "time zone), duration, decimal, categorical/dictionary of these, all-null columns, and the "
    "pandas nullable dtypes (Int64, boolean, Float64, string, ...)"
)

_UInt8Array = npt.NDArray[np.uint8]
_BoolArray = npt.NDArray[np.bool_]


class _Sink(Protocol):
    def update(self, data: Any, /) -> object: ...


class _Layout(enum.Enum):
    """How a logical type's values are laid out in the stream (docs: "Values")."""

    ABSENT = "no value bytes: every row is null"
    BYTE_PER_BOOL = "one byte per row, 0 or 1"
    FIXED = "the little-endian value bytes of every row"
    FLOAT = "the little-endian IEEE 754 bytes of every row, one NaN, no -0.0"
    VARIABLE = "a length per row, then the concatenated bytes"


@dataclass(frozen=True, slots=True)
class _TypeRule:
    """One row of the type table: which Arrow types it covers, their tag and their layout."""

    matches: Callable[[Any], bool]
    tag: Callable[[Any], str]
    layout: _Layout
    storage_type: Any = None
    """Arrow type the chunks are cast to before reading buffers (all string and binary forms)."""


def _any_of(*predicates: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda arrow_type: any(predicate(arrow_type) for predicate in predicates)


def _timestamp_tag(arrow_type: Any) -> str:
    if arrow_type.tz is None:
        return f"timestamp[{arrow_type.unit}]"
    return f"timestamp[{arrow_type.unit},{arrow_type.tz}]"


_TYPE_RULES: Final[tuple[_TypeRule, ...]] = (
    _TypeRule(pa.types.is_null, lambda t: "null", _Layout.ABSENT),
    _TypeRule(pa.types.is_boolean, lambda t: "bool", _Layout.BYTE_PER_BOOL),
    _TypeRule(pa.types.is_signed_integer, lambda t: f"int{t.bit_width}", _Layout.FIXED),
    _TypeRule(pa.types.is_unsigned_integer, lambda t: f"uint{t.bit_width}", _Layout.FIXED),
    _TypeRule(pa.types.is_floating, lambda t: f"float{t.bit_width}", _Layout.FLOAT),
    _TypeRule(
        _any_of(pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view),
        lambda t: "utf8",
        _Layout.VARIABLE,
        pa.large_string(),
    ),
    _TypeRule(
        _any_of(pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view),
        lambda t: "binary",
        _Layout.VARIABLE,
        pa.large_binary(),
    ),
    _TypeRule(
        pa.types.is_fixed_size_binary, lambda t: f"fixed_size_binary[{t.byte_width}]", _Layout.FIXED
    ),
    _TypeRule(pa.types.is_date32, lambda t: "date32", _Layout.FIXED),
    _TypeRule(pa.types.is_date64, lambda t: "date64", _Layout.FIXED),
    _TypeRule(
        _any_of(pa.types.is_time32, pa.types.is_time64),
        lambda t: f"time{t.bit_width}[{t.unit}]",
        _Layout.FIXED,
    ),
    _TypeRule(pa.types.is_timestamp, _timestamp_tag, _Layout.FIXED),
    _TypeRule(pa.types.is_duration, lambda t: f"duration[{t.unit}]", _Layout.FIXED),
    _TypeRule(
        pa.types.is_decimal,
        lambda t: f"decimal{t.bit_width}({t.precision},{t.scale})",
        _Layout.FIXED,
    ),
)

_CANONICAL_NAN: Final[
    dict[int, tuple[type[np.floating[Any]], type[np.unsignedinteger[Any]], int]]
] = {
    2: (np.float16, np.uint16, 0x7E00),
    4: (np.float32, np.uint32, 0x7FC0_0000),
    8: (np.float64, np.uint64, 0x7FF8_0000_0000_0000),
}
"""Per float width: numpy float type, same-width bits type, and the one NaN bit pattern hashed."""

_OBJECT_COLUMN_TYPES: Final = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_binary,
    pa.types.is_large_binary,
    pa.types.is_null,
)
"""What an ``object`` column may hold: str values, bytes values, or nothing but missing values."""


@dataclass(frozen=True, slots=True)
class _Column:
    """One column to hash: Arrow chunks of one type, plus what error messages call it."""

    described: str
    name: str | None
    dtype: str
    arrow_type: Any
    chunks: tuple[Any, ...]


# --- public API -------------------------------------------------------------------------


def canonical_digest(data: pd.DataFrame) -> bytes:
    """The 32-byte BLAKE3 canonical digest of a DataFrame (layout: docs/canonical-digest.md).

    Equal frames give equal digests in any process; a change of any value, null position, column
    name, column order, dtype, row or index gives a different one. Each column is converted with
    ``pyarrow.Array.from_pandas``, so NaN in a float column means "missing" (the pandas meaning)
    and hashes as null. Raises :class:`UnsupportedColumnError` naming the column and its dtype
    for anything without a canonical form (lists, structs, mixed ``object`` columns, ...), and
    for column names that are not strings.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"canonical_digest takes a pandas DataFrame, not {type(data).__name__}")
    hasher = blake3.blake3()
    _feed_frame(hasher, data)
    return _finish(hasher)


def canonical_digest_table(table: pa.Table) -> bytes:
    """The same digest for an Arrow table: equal to :func:`canonical_digest` of its DataFrame.

    ``canonical_digest_table(pa.Table.from_pandas(df)) == canonical_digest(df)``. The table's
    ``pandas`` schema metadata is read only to find which columns are the frame's index (as
    ``Table.to_pandas`` does); no metadata byte is ever hashed. Chunking and slice offsets do not
    change the digest.
    """
    if not isinstance(table, pa.Table):
        raise TypeError(f"canonical_digest_table takes a pyarrow Table, not {type(table).__name__}")
    hasher = blake3.blake3()
    _feed_table(hasher, table)
    return _finish(hasher)


def _finish(hasher: Any) -> bytes:
    return bytes(hasher.digest(length=DIGEST_SIZE))


# --- frames and tables as columns -------------------------------------------------------


def _feed_frame(sink: _Sink, data: pd.DataFrame) -> None:
    rows = len(data)
    index = _frame_index(data.index, rows)
    columns = [
        _frame_column(position, name, series)
        for position, (name, series) in enumerate(data.items())
    ]
    _feed_columns(sink, rows, index, columns)


def _feed_table(sink: _Sink, table: Any) -> None:
    index, index_fields = _table_index(table)
    columns = [
        _Column(
            f"column {field.name!r}", field.name, str(field.type), field.type, _chunks_of(column)
        )
        for position, (field, column) in enumerate(zip(table.schema, table.columns, strict=True))
        if position not in index_fields
    ]
    _feed_columns(sink, table.num_rows, index, columns)


def _frame_column(position: int, name: object, series: pd.Series[Any]) -> _Column:
    if not isinstance(name, str):
        raise UnsupportedColumnError(
            f"column {name!r} (position {position}, dtype {series.dtype}) has a "
            f"name of type {type(name).__name__}; canonical digests need str column names: rename "
            f"the columns, e.g. frame.columns = frame.columns.astype(str)"
        )
    return _converted(f"column {name!r}", _encodable_name(name, position), series)


def _frame_index(index: pd.Index[Any], rows: int) -> list[_Column]:
    if isinstance(index, pd.RangeIndex) and _is_default_range(
        index.start, index.step, index.name, len(index), rows
    ):
        return []
    levels = [
        _converted(
            _index_described(level_number, name),
            _index_name(level_number, name),
            index.get_level_values(level_number),
        )
        for level_number, name in enumerate(index.names)
    ]
    return [] if _is_default_index(levels, rows) else levels


def _converted(described: str, name: str | None, values: pd.Series[Any] | pd.Index[Any]) -> _Column:
    """Convert one pandas column or index level to Arrow, refusing what has no canonical form."""
    try:
        array = pa.Array.from_pandas(values)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        # Arrow's message can quote a cell, and cells are classified content: name the error
        # class only, and do not chain the original exception into tracebacks and logs.
        raise UnsupportedColumnError(
            f"{described} has dtype {values.dtype}, which has no canonical serialization "
            f"(Arrow cannot convert it: {type(exc).__name__}, e.g. values of mixed or "
            f"unsupported Python types); {_SUPPORTED_TYPES}"
        ) from None
    if values.dtype == object and not any(test(array.type) for test in _OBJECT_COLUMN_TYPES):
        raise UnsupportedColumnError(
            f"{described} has dtype object holding {array.type} values; an object column is "
            f"canonical only when every value is a str (or every value bytes), missing values "
            f"aside: convert it to a typed column first, e.g. .astype('Int64') or .astype(str)"
        )
    return _Column(described, name, str(values.dtype), array.type, _chunks_of(array))


def _chunks_of(array: Any) -> tuple[Any, ...]:
    if isinstance(array, pa.ChunkedArray):
        return tuple(array.chunks)
    return (array,)


def _index_described(level_number: int, name: object) -> str:
    return f"index level {level_number} ({'unnamed' if name is None else repr(name)})"


def _index_name(level_number: int, name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise UnsupportedColumnError(
            f"{_index_described(level_number, name)} has a name of type {type(name).__name__}; "
            f"canonical digests need str or no index names: rename it, e.g. "
            f"frame.index = frame.index.rename(str({name!r}))"
        )
    return _encodable_name(name, level_number)


def _encodable_name(name: str, position: int) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsupportedColumnError(
            f"column or index name {name!r} (position {position}) is not valid Unicode text "
            f"(it holds a lone surrogate) and cannot be encoded as UTF-8"
        ) from None
    return name


def _is_default_range(start: int, step: int, name: object, length: int, rows: int) -> bool:
    return start == 0 and step == 1 and name is None and length == rows


def _is_default_index(levels: Sequence[_Column], rows: int) -> bool:
    """One unnamed int64 level holding exactly 0, 1, ..., rows - 1 with no nulls."""
    if len(levels) != 1:
        return False
    (level,) = levels
    if level.name is not None or not pa.types.is_int64(level.arrow_type):
        return False
    if any(chunk.null_count for chunk in level.chunks):
        return False
    values = [chunk.to_numpy() for chunk in level.chunks]
    found = np.concatenate(values) if values else np.empty(0, dtype=np.int64)
    return bool(np.array_equal(found, np.arange(rows, dtype=np.int64)))


# --- the index of an Arrow table (pandas metadata, read for structure only) -------------


@dataclass(frozen=True, slots=True)
class _RangeDescriptor:
    start: int
    stop: int
    step: int
    name: object


def _table_index(table: Any) -> tuple[list[_Column], frozenset[int]]:
    """The index levels ``Table.to_pandas`` would build, and the field positions they use."""
    rows = table.num_rows
    descriptors, logical_names = _pandas_index_metadata(table.schema)
    if len(descriptors) == 1 and isinstance(descriptors[0], _RangeDescriptor):
        only = descriptors[0]
        length = len(range(only.start, only.stop, only.step))
        if _is_default_range(only.start, only.step, only.name, length, rows):
            return [], frozenset()
    levels: list[_Column] = []
    used: set[int] = set()
    for descriptor in descriptors:
        if isinstance(descriptor, str):
            position = table.schema.get_field_index(descriptor)
            if position < 0:
                continue  # as in to_pandas: a serialized index column that was dropped is ignored
            name = logical_names.get(descriptor, descriptor)
            if name == descriptor and _GENERATED_INDEX_NAME.fullmatch(descriptor):
                name = None
            column = table.column(position)
            arrow_type, chunks = column.type, _chunks_of(column)
            used.add(position)
        else:
            if len(range(descriptor.start, descriptor.stop, descriptor.step)) != rows:
                continue  # as in to_pandas: a range that does not fit the rows is ignored
            name = descriptor.name
            values = np.arange(descriptor.start, descriptor.stop, descriptor.step, dtype=np.int64)
            arrow_type, chunks = pa.int64(), (pa.array(values),)
        level_number = len(levels)
        levels.append(
            _Column(
                _index_described(level_number, name),
                _index_name(level_number, name),
                str(arrow_type),
                arrow_type,
                chunks,
            )
        )
    return ([] if _is_default_index(levels, rows) else levels), frozenset(used)


def _pandas_index_metadata(schema: Any) -> tuple[list[str | _RangeDescriptor], dict[str, object]]:
    """Index descriptors and logical column names from the ``pandas`` schema metadata, if any."""
    raw = (schema.metadata or {}).get(b"pandas")
    if raw is None:
        return [], {}
    try:
        metadata = json.loads(raw)
        logical_names = {
            entry.get("field_name", entry["name"]): entry["name"]
            for entry in metadata.get("columns", [])
        }
        descriptors = [_index_descriptor(entry) for entry in metadata["index_columns"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DigestError(
            f"the table's 'pandas' schema metadata is malformed ({type(exc).__name__}: {exc}); "
            f"drop it (table.replace_schema_metadata(None)) or rebuild the table with "
            f"pyarrow.Table.from_pandas"
        ) from None
    return descriptors, logical_names


def _index_descriptor(entry: object) -> str | _RangeDescriptor:
    if isinstance(entry, str):
        return entry
    if not isinstance(entry, dict) or entry.get("kind") != "range":
        raise ValueError(f"unrecognized index descriptor {entry!r}")
    bounds = [entry["start"], entry["stop"], entry["step"]]
    if any(isinstance(bound, bool) or not isinstance(bound, int) for bound in bounds):
        raise TypeError(f"range index bounds must be integers: {entry!r}")
    if bounds[2] == 0:
        raise ValueError(f"range index step is zero: {entry!r}")
    return _RangeDescriptor(bounds[0], bounds[1], bounds[2], entry.get("name"))


# --- the stream ---------------------------------------------------------------------------


class _Stream:
    """Writes the canonical stream's primitives: u64 integers and length-prefixed blocks."""

    __slots__ = ("_sink",)

    def __init__(self, sink: _Sink) -> None:
        if sys.byteorder != "little":
            raise DigestError(
                "canonical digests read little-endian Arrow buffers; this host is big-endian"
            )
        self._sink = sink

    def u64(self, value: int) -> None:
        self._sink.update(_U64.pack(value))

    def raw(self, data: bytes) -> None:
        self._sink.update(data)

    def block(self, *parts: Any) -> None:
        """One block: the total byte length as u64, then every part's bytes in order."""
        views = [memoryview(part).cast("B") for part in parts]
        self.u64(sum(view.nbytes for view in views))
        for view in views:
            self._sink.update(view)


def _feed_columns(
    sink: _Sink, rows: int, index: Sequence[_Column], columns: Sequence[_Column]
) -> None:
    stream = _Stream(sink)
    stream.block(DIGEST_VERSION.encode("ascii"))
    stream.u64(rows)
    stream.u64(len(index))
    stream.u64(len(columns))
    for column in (*index, *columns):
        _write_column(stream, column)


def _write_column(stream: _Stream, column: _Column) -> None:
    arrow_type = column.arrow_type
    if pa.types.is_dictionary(arrow_type):
        value_type = arrow_type.value_type
        rule = _rule_for(value_type, column)
        ordered = ",ordered" if arrow_type.ordered else ""
        tag = f"dictionary<{rule.tag(value_type)}{ordered}>"
        chunks = tuple(chunk.dictionary_decode() for chunk in column.chunks)
    else:
        value_type = arrow_type
        rule = _rule_for(arrow_type, column)
        tag = rule.tag(arrow_type)
        chunks = column.chunks
    if column.name is None:
        stream.raw(_NAME_ABSENT)
    else:
        stream.raw(_NAME_PRESENT)
        stream.block(column.name.encode("utf-8"))
    stream.block(tag.encode("utf-8"))
    _write_cells(stream, rule, value_type, chunks)
    if pa.types.is_dictionary(arrow_type) and arrow_type.ordered:
        categories = _ordered_categories(column)
        stream.u64(len(categories))
        _write_cells(stream, rule, value_type, (categories,))


def _rule_for(arrow_type: Any, column: _Column) -> _TypeRule:
    for rule in _TYPE_RULES:
        if rule.matches(arrow_type):
            return rule
    raise UnsupportedColumnError(
        f"{column.described} has dtype {column.dtype} (Arrow type {arrow_type}), which has no "
        f"canonical serialization; {_SUPPORTED_TYPES}"
    )


def _ordered_categories(column: _Column) -> Any:
    """The one category order of an ordered dictionary column: part of its dtype."""
    dictionaries = [chunk.dictionary for chunk in column.chunks]
    if not dictionaries:
        return pa.array([], type=column.arrow_type.value_type)
    first = dictionaries[0]
    if not all(dictionary.equals(first) for dictionary in dictionaries[1:]):
        raise UnsupportedColumnError(
            f"{column.described} has dtype {column.dtype}: an ordered dictionary whose chunks "
            f"use different dictionaries, so its category order is ambiguous; unify them first "
            f"(table.unify_dictionaries()) or make it unordered"
        )
    return first


def _write_cells(stream: _Stream, rule: _TypeRule, value_type: Any, chunks: Sequence[Any]) -> None:
    """Validity section, then the values section of ``rule``'s layout."""
    if rule.storage_type is not None and not value_type.equals(rule.storage_type):
        chunks = [chunk.cast(rule.storage_type) for chunk in chunks]
    null_count = sum(chunk.null_count for chunk in chunks)
    stream.u64(null_count)
    valid: list[_BoolArray | None] = [None] * len(chunks)
    if null_count:
        valid = [
            chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else None
            for chunk in chunks
        ]
        everything = [
            np.ones(len(chunk), dtype=np.bool_) if mask is None else mask
            for chunk, mask in zip(chunks, valid, strict=True)
        ]
        stream.block(np.packbits(np.concatenate(everything), bitorder="little"))
    _VALUE_WRITERS[rule.layout](stream, value_type, chunks, valid)


# --- values, by layout -----------------------------------------------------------------------

_ValueWriter = Callable[[_Stream, Any, Sequence[Any], Sequence["_BoolArray | None"]], None]


def _write_no_values(
    stream: _Stream, value_type: Any, chunks: Sequence[Any], valid: Sequence[_BoolArray | None]
) -> None:
    """Every row of a null-typed column is null: the validity section says it all."""


def _write_bools(
    stream: _Stream, value_type: Any, chunks: Sequence[Any], valid: Sequence[_BoolArray | None]
) -> None:
    parts = [
        (chunk if mask is None else chunk.fill_null(False))
        .to_numpy(zero_copy_only=False)
        .view(np.uint8)
        for chunk, mask in zip(chunks, valid, strict=True)
    ]
    stream.block(*parts)


def _write_fixed(
    stream: _Stream, value_type: Any, chunks: Sequence[Any], valid: Sequence[_BoolArray | None]
) -> None:
    width = value_type.bit_width // 8
    stream.block(
        *(_fixed_width_bytes(chunk, mask, width) for chunk, mask in zip(chunks, valid, strict=True))
    )


def _write_floats(
    stream: _Stream, value_type: Any, chunks: Sequence[Any], valid: Sequence[_BoolArray | None]
) -> None:
    width = value_type.bit_width // 8
    stream.block(
        *(
            _canonical_floats(_fixed_width_bytes(chunk, mask, width), width)
            for chunk, mask in zip(chunks, valid, strict=True)
        )
    )


def _write_variable(
    stream: _Stream, value_type: Any, chunks: Sequence[Any], valid: Sequence[_BoolArray | None]
) -> None:
    lengths: list[npt.NDArray[np.int64]] = []
    payloads: list[Any] = []
    for chunk, mask in zip(chunks, valid, strict=True):
        # fill_null rebuilds the offsets, so bytes a producer left under a null slot drop out.
        compact = chunk if mask is None else chunk.fill_null(b"")
        count = len(compact)
        if count == 0:
            continue
        offsets = np.frombuffer(
            compact.buffers()[1], dtype=np.int64, count=count + 1, offset=compact.offset * 8
        )
        lengths.append(np.diff(offsets))
        data = compact.buffers()[2]
        payloads.append(b"" if data is None else memoryview(data)[offsets[0] : offsets[-1]])
    stream.block(*lengths)
    stream.block(*payloads)


_VALUE_WRITERS: Final[dict[_Layout, _ValueWriter]] = {
    _Layout.ABSENT: _write_no_values,
    _Layout.BYTE_PER_BOOL: _write_bools,
    _Layout.FIXED: _write_fixed,
    _Layout.FLOAT: _write_floats,
    _Layout.VARIABLE: _write_variable,
}


def _fixed_width_bytes(chunk: Any, valid: _BoolArray | None, width: int) -> _UInt8Array:
    """The chunk's value bytes (its slice offset applied), with every null row zeroed."""
    count = len(chunk)
    if count == 0:
        return np.empty(0, dtype=np.uint8)
    raw: _UInt8Array = np.frombuffer(
        chunk.buffers()[1], dtype=np.uint8, count=count * width, offset=chunk.offset * width
    )
    if valid is None:
        return raw
    rows = raw.reshape(count, width).copy()
    rows[~valid] = 0
    return rows.reshape(-1)


def _canonical_floats(raw: _UInt8Array, width: int) -> _UInt8Array:
    """Every NaN as the one quiet NaN, -0.0 as +0.0; copies only when something changes."""
    float_type, bits_type, nan_bits = _CANONICAL_NAN[width]
    values = raw.view(float_type)
    nan = np.isnan(values)
    negative_zero = (values == 0) & np.signbit(values)
    if not (nan.any() or negative_zero.any()):
        return raw
    bits = raw.view(bits_type).copy()
    bits[nan] = nan_bits
    bits[negative_zero] = 0
    return bits.view(np.uint8)
