"""A second, deliberately slow implementation of docs/canonical-digest.md, for tests only.

It is written from the document, not from ``_digest.py``: one Python loop per cell over
``to_pylist()`` values, no buffers, no numpy. The fast implementation must produce exactly the
same stream. Index resolution from pandas metadata is not repeated here; tests of the table path
compare it with the DataFrame path instead.
"""

from __future__ import annotations

import decimal
import struct
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from elspeth.security import DIGEST_VERSION

_CANONICAL_NAN = {16: b"\x00\x7e", 32: b"\x00\x00\xc0\x7f", 64: b"\x00\x00\x00\x00\x00\x00\xf8\x7f"}
_FLOAT_FORMAT = {16: "<e", 32: "<f", 64: "<d"}


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def _block(data: bytes) -> bytes:
    return _u64(len(data)) + data


def _tag(arrow_type: Any) -> str:
    t = pa.types
    if t.is_null(arrow_type):
        return "null"
    if t.is_boolean(arrow_type):
        return "bool"
    if t.is_integer(arrow_type):
        return ("int" if t.is_signed_integer(arrow_type) else "uint") + str(arrow_type.bit_width)
    if t.is_floating(arrow_type):
        return f"float{arrow_type.bit_width}"
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_string_view(arrow_type):
        return "utf8"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_binary_view(arrow_type):
        return "binary"
    if t.is_fixed_size_binary(arrow_type):
        return f"fixed_size_binary[{arrow_type.byte_width}]"
    if t.is_date32(arrow_type) or t.is_date64(arrow_type):
        return str(arrow_type).split("[")[0]
    if t.is_time(arrow_type):
        return f"time{arrow_type.bit_width}[{arrow_type.unit}]"
    if t.is_timestamp(arrow_type):
        zone = "" if arrow_type.tz is None else f",{arrow_type.tz}"
        return f"timestamp[{arrow_type.unit}{zone}]"
    if t.is_duration(arrow_type):
        return f"duration[{arrow_type.unit}]"
    if t.is_decimal(arrow_type):
        return f"decimal{arrow_type.bit_width}({arrow_type.precision},{arrow_type.scale})"
    raise NotImplementedError(f"reference digest has no tag for {arrow_type}")


def _integer_storage(arrow_type: Any) -> Any:
    """Temporal types are stored as integers of their width; reading those is allowed here."""
    t = pa.types
    if t.is_date(arrow_type) or t.is_time(arrow_type) or t.is_timestamp(arrow_type):
        return pa.int32() if arrow_type.bit_width == 32 else pa.int64()
    if t.is_duration(arrow_type):
        return pa.int64()
    return None


def _unscaled(value: decimal.Decimal, scale: int) -> int:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    magnitude = int("".join(map(str, digits)) or "0") * 10 ** (exponent + scale)
    return -magnitude if sign else magnitude


def _cell(arrow_type: Any, value: Any) -> bytes:
    t = pa.types
    if t.is_boolean(arrow_type):
        return b"\x01" if value else b"\x00"
    width = arrow_type.bit_width
    if value is None:
        return bytes(width // 8)
    if t.is_floating(arrow_type):
        if value != value:
            return _CANONICAL_NAN[width]
        return struct.pack(_FLOAT_FORMAT[width], 0.0 if value == 0 else value)
    if t.is_decimal(arrow_type):
        return _unscaled(value, arrow_type.scale).to_bytes(width // 8, "little", signed=True)
    if t.is_fixed_size_binary(arrow_type):
        return bytes(value)
    signed = not t.is_unsigned_integer(arrow_type)
    return int(value).to_bytes(width // 8, "little", signed=signed)


def _cells(arrow_type: Any, array: Any) -> bytes:
    storage = _integer_storage(arrow_type)
    values = (array if storage is None else array.view(storage)).to_pylist()
    out = bytearray(_u64(sum(value is None for value in values)))
    if any(value is None for value in values):
        bitmap = bytearray((len(values) + 7) // 8)
        for row, value in enumerate(values):
            if value is not None:
                bitmap[row // 8] |= 1 << (row % 8)
        out += _block(bytes(bitmap))
    if pa.types.is_null(arrow_type):
        return bytes(out)
    if _tag(arrow_type) in ("utf8", "binary"):
        encoded = [b"" if v is None else (v.encode() if isinstance(v, str) else v) for v in values]
        out += _block(b"".join(_u64(len(item)) for item in encoded))
        out += _block(b"".join(encoded))
        return bytes(out)
    out += _block(b"".join(_cell(arrow_type, value) for value in values))
    return bytes(out)


def _column(name: str | None, array: Any) -> bytes:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], type=array.type)
    out = bytearray(b"\x00" if name is None else b"\x01" + _block(name.encode()))
    arrow_type = array.type
    if pa.types.is_dictionary(arrow_type):
        ordered = ",ordered" if arrow_type.ordered else ""
        out += _block(f"dictionary<{_tag(arrow_type.value_type)}{ordered}>".encode())
        out += _cells(arrow_type.value_type, array.dictionary_decode())
        if arrow_type.ordered:
            out += _u64(len(array.dictionary)) + _cells(arrow_type.value_type, array.dictionary)
        return bytes(out)
    out += _block(_tag(arrow_type).encode())
    out += _cells(arrow_type, array)
    return bytes(out)


def reference_stream(
    rows: int, index: Sequence[tuple[str | None, Any]], columns: Sequence[tuple[str, Any]]
) -> bytes:
    """The canonical stream of a frame given as Arrow index levels and data columns."""
    out = bytearray(_block(DIGEST_VERSION.encode()))
    out += _u64(rows) + _u64(len(index)) + _u64(len(columns))
    for name, array in [*index, *columns]:
        out += _column(name, array)
    return bytes(out)


def reference_stream_of_frame(frame: pd.DataFrame) -> bytes:
    """The canonical stream of a DataFrame, with the index rule written the pandas way."""
    index = frame.index
    default = (
        index.nlevels == 1
        and index.name is None
        and str(index.dtype) == "int64"
        and index.tolist() == list(range(len(frame)))
    )
    levels = (
        []
        if default
        else [
            (name, pa.Array.from_pandas(index.get_level_values(number)))
            for number, name in enumerate(index.names)
        ]
    )
    columns = [
        (str(name), pa.Array.from_pandas(frame.iloc[:, i])) for i, name in enumerate(frame.columns)
    ]
    return reference_stream(len(frame), levels, columns)


def reference_stream_of_table(table: Any) -> bytes:
    """The canonical stream of an Arrow table without pandas metadata (default index)."""
    return reference_stream(
        table.num_rows, [], list(zip(table.column_names, table.columns, strict=True))
    )
