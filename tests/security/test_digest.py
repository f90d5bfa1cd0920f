"""Canonical digest: determinism, sensitivity, invariance, errors, scale, vectors, reference."""

from __future__ import annotations

import itertools
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.security import (
    DIGEST_SIZE,
    DIGEST_VERSION,
    DigestError,
    UnsupportedColumnError,
    canonical_digest,
    canonical_digest_table,
)
from tests.security.digest_frames import (
    frame_from_description,
    large_random_frame,
    sample_frame,
    stream_of_frame,
    stream_of_table,
)
from tests.security.digest_reference import reference_stream_of_frame, reference_stream_of_table

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors" / "digest_vectors.json"


def load_vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return loaded


# --- basics -------------------------------------------------------------------------------


def test_digest_is_blake3_of_the_documented_stream() -> None:
    frame = sample_frame()
    stream = stream_of_frame(frame)
    digest = canonical_digest(frame)
    assert len(digest) == DIGEST_SIZE == 32
    assert digest == blake3.blake3(stream).digest()
    version = DIGEST_VERSION.encode()
    assert stream.startswith(len(version).to_bytes(8, "little") + version)
    assert stream[8 + len(version) :].startswith(struct.pack("<QQQ", 4, 0, 10))


def test_wrong_argument_types_are_refused() -> None:
    with pytest.raises(TypeError, match="pandas DataFrame, not Table"):
        canonical_digest(pa.table({"a": [1]}))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pyarrow Table, not DataFrame"):
        canonical_digest_table(pd.DataFrame({"a": [1]}))


# --- determinism across processes -------------------------------------------------------

_SUBPROCESS_DIGESTS = """
import json
import pyarrow as pa
from elspeth.security import canonical_digest, canonical_digest_table
from tests.security.digest_frames import large_random_frame, sample_frame
frame = sample_frame()
big = large_random_frame(50_000)
print(json.dumps([
    canonical_digest(frame).hex(),
    canonical_digest_table(pa.Table.from_pandas(frame)).hex(),
    canonical_digest(big).hex(),
    canonical_digest(frame.set_index(["text", "id"])).hex(),
]))
"""


def test_digests_are_identical_in_a_fresh_process() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    result = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_DIGESTS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    frame = sample_frame()
    here = [
        canonical_digest(frame).hex(),
        canonical_digest_table(pa.Table.from_pandas(frame)).hex(),
        canonical_digest(large_random_frame(50_000)).hex(),
        canonical_digest(frame.set_index(["text", "id"])).hex(),
    ]
    assert json.loads(result.stdout) == here
    assert len(set(here)) == 3  # the DataFrame and its table agree; the others differ


# --- sensitivity ------------------------------------------------------------------------


def _assign(column: str, values: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: values})


SENSITIVITY: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "int value": _assign("id", [1, 2, 30, 4]),
    "float value by one ulp": _assign("score", [np.nextafter(0.5, 1), np.nan, -1.25, 3.0]),
    "string value": _assign("text", ["alpha", None, "gamme", "δέλτα"]),
    "string boundary moved": _assign("text", ["alph", None, "agamma", "δέλτα"]),
    "empty string instead of null": _assign("text", ["alpha", "", "gamma", "δέλτα"]),
    "null instead of value": _assign("text", [None, None, "gamma", "δέλτα"]),
    "null position moved": _assign("count", pd.array([1, 2, None, 4], dtype="Int64")),
    "bool flipped": _assign("flag", [True, False, False, True]),
    "timestamp value": _assign(
        "when",
        pd.Series(["2024-01-02", "2024-02-01", None, "2024-04-01"], dtype="datetime64[us, UTC]"),
    ),
    "category value": _assign("colour", pd.Categorical(["red", "red", "red", None])),
    "column renamed": lambda f: f.rename(columns={"text": "texts"}),
    "column order": lambda f: f[["small", "id", *f.columns[2:]]],
    "column removed": lambda f: f.drop(columns=["wait"]),
    "column added": _assign("extra", [0, 0, 0, 0]),
    "int64 to int32": _assign("id", pd.Series([1, 2, 3, 4], dtype="int32")),
    "int64 to uint64": _assign("id", pd.Series([1, 2, 3, 4], dtype="uint64")),
    "float32 to float64": _assign("ratio", pd.Series([0.5, 1.5, 2.5, 3.5], dtype="float64")),
    "bool to int8": _assign("flag", pd.Series([1, 0, 1, 1], dtype="int8")),
    "timestamp unit": lambda f: f.assign(when=f["when"].astype("datetime64[ns, UTC]")),
    "timestamp zone (same instants)": lambda f: f.assign(
        when=f["when"].dt.tz_convert("Europe/London")
    ),
    "timezone dropped": lambda f: f.assign(when=f["when"].dt.tz_localize(None)),
    "categorical to plain": lambda f: f.assign(colour=f["colour"].astype(str)),
    "plain to categorical": lambda f: f.assign(text=f["text"].astype("category")),
    "duration unit": lambda f: f.assign(wait=f["wait"].astype("timedelta64[ms]")),
    "row removed": lambda f: f.iloc[:-1],
    "row added": lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True),
    "rows reordered": lambda f: f.iloc[[1, 0, 2, 3]].reset_index(drop=True),
    "index values": lambda f: f.set_axis([10, 11, 12, 13]),
    "index named": lambda f: f.rename_axis("row"),
    "index as float": lambda f: f.set_axis(pd.Index([0.0, 1.0, 2.0, 3.0])),
    "index offset range": lambda f: f.set_axis(pd.RangeIndex(1, 5)),
    "index step": lambda f: f.set_axis(pd.RangeIndex(0, 8, 2)),
    "column moved into the index": lambda f: f.set_index("id"),
}


def test_every_kind_of_change_changes_the_digest() -> None:
    base = sample_frame()
    digests = {"base": canonical_digest(base)}
    for name, change in SENSITIVITY.items():
        changed = change(base.copy())
        digests[name] = canonical_digest(changed)
        assert digests[name] != digests["base"], name
        assert canonical_digest_table(pa.Table.from_pandas(changed)) == digests[name], name
    assert len(set(digests.values())) == len(digests), "two different changes collided"


def test_a_sliced_frame_keeps_its_offset_index_in_the_digest() -> None:
    frame = large_random_frame(20)
    window = frame.iloc[5:10]
    assert canonical_digest(window) != canonical_digest(window.reset_index(drop=True))
    assert canonical_digest(window) == canonical_digest(window.copy(deep=True))
    assert canonical_digest_table(pa.Table.from_pandas(window)) == canonical_digest(window)


def test_ordered_categories_are_part_of_the_dtype() -> None:
    def severity(order: list[str], ordered: bool) -> pd.DataFrame:
        dtype = pd.CategoricalDtype(order, ordered=ordered)
        return pd.DataFrame({"s": pd.Series(["lo", "hi", "lo"], dtype=dtype)})

    forward, backward = ["lo", "hi"], ["hi", "lo"]
    assert canonical_digest(severity(forward, True)) != canonical_digest(severity(backward, True))
    assert canonical_digest(severity(forward, True)) != canonical_digest(severity(forward, False))
    # An unordered categorical's category order and unused categories are encoding only.
    assert canonical_digest(severity(forward, False)) == canonical_digest(
        severity([*backward, "mid"], False)
    )


# --- invariance -------------------------------------------------------------------------


def test_chunking_does_not_change_the_digest() -> None:
    table = pa.Table.from_pandas(large_random_frame(1000))
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
    assert chunked.column("label").num_chunks > 100
    ragged = pa.concat_tables([table.slice(0, 1), table.slice(1, 500), table.slice(501)])
    expected = canonical_digest_table(table)
    assert canonical_digest_table(chunked) == expected
    assert canonical_digest_table(ragged) == expected
    assert canonical_digest_table(table.combine_chunks()) == expected


def test_slice_offsets_do_not_change_the_digest() -> None:
    frame = sample_frame().reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sliced = table.slice(1, 2)
    assert sliced.column("text").chunk(0).offset == 1
    copied = pa.table(
        {
            name: pa.array(sliced.column(name).to_pylist(), sliced.column(name).type)
            for name in sliced.column_names
        }
    )
    assert copied.column("text").chunk(0).offset == 0
    assert canonical_digest_table(sliced) == canonical_digest_table(copied)
    assert stream_of_table(sliced) == reference_stream_of_table(copied)


STRING_FORMS: dict[str, Callable[[list[str | None]], Any]] = {
    "object": lambda v: pd.Series(v, dtype=object),
    "str (pandas default)": lambda v: pd.Series(v, dtype="str"),
    "string[python]": lambda v: pd.Series(v, dtype="string[python]"),
    "string[pyarrow]": lambda v: pd.Series(v, dtype="string[pyarrow]"),
    "arrow string_view": lambda v: pd.Series(v, dtype=pd.ArrowDtype(pa.string_view())),
    "arrow large_string": lambda v: pd.Series(v, dtype=pd.ArrowDtype(pa.large_string())),
}


def test_string_representations_hash_identically() -> None:
    values = ["a", None, "", "ünïcødé", "x" * 300]
    digests = {
        name: canonical_digest(pd.DataFrame({"s": make(values)}))
        for name, make in STRING_FORMS.items()
    }
    assert len(set(digests.values())) == 1, digests
    arrow_forms = [pa.string(), pa.large_string(), pa.string_view()]
    tables = [pa.table({"s": pa.array(values, type=form)}) for form in arrow_forms]
    assert {canonical_digest_table(t) for t in tables} == set(digests.values())
    as_binary = pa.table({"s": pa.array([None if v is None else v.encode() for v in values])})
    assert canonical_digest_table(as_binary) not in set(digests.values())


def test_dictionary_encodings_of_the_same_values_hash_identically() -> None:
    values = ["b", "a", None, "b", "c"]
    plain = pa.array(values).dictionary_encode()
    wider = pa.DictionaryArray.from_arrays(
        pa.array([1, 0, None, 1, 3], pa.int32()), pa.array(["a", "b", "unused", "c"])
    )
    null_entry = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 2, 0, 3], pa.int64()), pa.array(["b", "a", None, "c"], pa.large_string())
    )
    digests = {canonical_digest_table(pa.table({"d": form})) for form in (plain, wider, null_entry)}
    assert len(digests) == 1
    assert canonical_digest_table(pa.table({"d": pa.array(values)})) not in digests


def test_schema_and_field_metadata_are_never_hashed() -> None:
    frame = sample_frame().set_index("id")
    table = pa.Table.from_pandas(frame)
    pandas_meta = json.loads(table.schema.metadata[b"pandas"])
    pandas_meta["pandas_version"] = "0.0.1"
    pandas_meta["creator"] = {"library": "pyarrow", "version": "1.0.0"}
    pandas_meta["attributes"] = {"note": "anything"}
    for column in pandas_meta["columns"]:
        column["metadata"] = {"made": "up"}
    altered = table.replace_schema_metadata(
        {b"pandas": json.dumps(pandas_meta).encode(), b"other": b"value"}
    )
    with_field_metadata = altered.cast(
        pa.schema([f.with_metadata({b"k": b"v"}) for f in altered.schema], altered.schema.metadata)
    )
    expected = canonical_digest(frame)
    assert canonical_digest_table(table) == expected
    assert canonical_digest_table(altered) == expected
    assert canonical_digest_table(with_field_metadata) == expected


def test_pandas_attributes_of_the_frame_are_not_content() -> None:
    frame = sample_frame()
    decorated = frame.copy()
    decorated.attrs["source"] = "somewhere"
    decorated.columns.name = "fields"
    assert canonical_digest(decorated) == canonical_digest(frame)


def test_a_default_index_needs_no_metadata() -> None:
    frame = sample_frame()
    with_metadata = pa.Table.from_pandas(frame)
    without = with_metadata.replace_schema_metadata(None)
    assert canonical_digest_table(without) == canonical_digest_table(with_metadata)
    assert canonical_digest_table(without) == canonical_digest(frame)


def test_default_index_forms_are_equal() -> None:
    frame = sample_frame()
    as_int_index = frame.set_axis(pd.Index([0, 1, 2, 3], dtype="int64"))
    assert not isinstance(as_int_index.index, pd.RangeIndex)
    assert canonical_digest(as_int_index) == canonical_digest(frame)
    as_table = pa.Table.from_pandas(as_int_index)
    assert as_table.schema.pandas_metadata["index_columns"] == ["__index_level_0__"]
    assert canonical_digest_table(as_table) == canonical_digest(frame)


def _float_bits(bits: int, width: int) -> float:
    packed = bits.to_bytes(width // 8, "big")
    unpacked: float = struct.unpack({16: ">e", 32: ">f", 64: ">d"}[width], packed)[0]
    return unpacked


@pytest.mark.parametrize(
    ("width", "arrow_type", "numpy_type", "nans"),
    [
        (
            64,
            pa.float64(),
            np.uint64,
            [0x7FF8000000000000, 0x7FF8000000000123, 0xFFF8000000000000, 0x7FF0000000000001],
        ),
        (32, pa.float32(), np.uint32, [0x7FC00000, 0x7FC00123, 0xFFC00000, 0x7F800001]),
        (16, pa.float16(), np.uint16, [0x7E00, 0x7E01, 0xFE00, 0x7C01]),
    ],
)
def test_nan_payloads_and_negative_zero_are_normalised(
    width: int, arrow_type: Any, numpy_type: Any, nans: list[int]
) -> None:
    def table_of_bits(bits: list[int]) -> pa.Table:
        raw = np.array(bits, dtype=numpy_type).view(arrow_type.to_pandas_dtype())
        return pa.table({"x": pa.array(raw, type=arrow_type)})

    negative_zero = 1 << (width - 1)
    digests = {canonical_digest_table(table_of_bits([nan, 0, negative_zero])) for nan in nans}
    assert len(digests) == 1
    assert canonical_digest_table(table_of_bits([nans[0], negative_zero, 0])) in digests
    one = {16: 0x3C00, 32: 0x3F800000, 64: 0x3FF0000000000000}[width]
    assert canonical_digest_table(table_of_bits([nans[0], one, 0])) not in digests
    assert _float_bits(negative_zero, width) == 0.0


def test_negative_zero_in_pandas_and_nan_as_missing() -> None:
    assert canonical_digest(pd.DataFrame({"x": [-0.0, 1.0]})) == canonical_digest(
        pd.DataFrame({"x": [0.0, 1.0]})
    )
    # In pandas, NaN in a float column means "missing": it hashes as a null...
    with_nan = pd.DataFrame({"x": [np.nan, 1.0]})
    assert canonical_digest(with_nan) == canonical_digest_table(pa.table({"x": [None, 1.0]}))
    # ...while an Arrow NaN value is a value, distinct from a null.
    arrow_nan = pa.table({"x": pa.array([float("nan"), 1.0])})
    assert canonical_digest_table(arrow_nan) != canonical_digest(with_nan)


def _with_garbage_under_nulls(arrow_type: Any, values: list[Any], junk: bytes) -> Any:
    clean = pa.array(values, type=arrow_type)
    validity, data = clean.buffers()[0], bytearray(clean.buffers()[1].to_pybytes())
    width = arrow_type.bit_width // 8
    for row, value in enumerate(values):
        if value is None:
            data[row * width : (row + 1) * width] = junk[:width]
    return pa.Array.from_buffers(
        arrow_type, len(values), [validity, pa.py_buffer(bytes(data))], null_count=clean.null_count
    )


def test_bytes_under_nulls_are_never_hashed() -> None:
    junk = b"\xde\xad\xbe\xef\xfe\xed\xfa\xce"
    for arrow_type, values in [
        (pa.int64(), [1, None, 3]),
        (pa.float64(), [1.5, None, 3.5]),
        (pa.timestamp("ns"), [1, None, 3]),
        (pa.decimal128(10, 2), [None, None, None]),
    ]:
        dirty = _with_garbage_under_nulls(arrow_type, values, junk * 4)
        assert dirty.to_pylist() == pa.array(values, type=arrow_type).to_pylist()
        clean = pa.array(values, type=arrow_type)
        assert canonical_digest_table(pa.table({"c": dirty})) == canonical_digest_table(
            pa.table({"c": clean})
        ), arrow_type
    offsets = pa.py_buffer(np.array([0, 1, 6, 7], dtype=np.int32).tobytes())
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    dirty_text = pa.Array.from_buffers(
        pa.string(), 3, [validity, offsets, pa.py_buffer(b"aHIDDEc")], null_count=1
    )
    clean_text = pa.array(["a", None, "c"])
    assert canonical_digest_table(pa.table({"t": dirty_text})) == canonical_digest_table(
        pa.table({"t": clean_text})
    )
    bools = pa.Array.from_buffers(pa.bool_(), 3, [validity, pa.py_buffer(b"\xff")], null_count=1)
    assert canonical_digest_table(pa.table({"b": bools})) == canonical_digest_table(
        pa.table({"b": pa.array([True, None, True])})
    )


def test_pandas_nullable_and_numpy_storage_of_one_logical_type_agree() -> None:
    pairs = [
        (pd.Series([1, 2], dtype="int64"), pd.Series([1, 2], dtype="Int64")),
        (pd.Series([True, False]), pd.Series([True, False], dtype="boolean")),
        (pd.Series([1.5, np.nan]), pd.Series([1.5, None], dtype="Float64")),
        (pd.Series([1, 2], dtype="int64"), pd.Series([1, 2], dtype="int64[pyarrow]")),
    ]
    for numpy_form, nullable_form in pairs:
        assert canonical_digest(pd.DataFrame({"c": numpy_form})) == canonical_digest(
            pd.DataFrame({"c": nullable_form})
        ), nullable_form.dtype


# --- errors -----------------------------------------------------------------------------


UNSUPPORTED: list[tuple[str, Callable[[], pd.DataFrame], list[str]]] = [
    (
        "lists",
        lambda: pd.DataFrame({"tags": pd.Series([[1], [2]])}),
        ["column 'tags'", "object", "list"],
    ),
    (
        "mixed object",
        lambda: pd.DataFrame({"mixed": pd.Series([1, "a"], dtype=object)}),
        ["column 'mixed'", "dtype object", "ArrowInvalid"],
    ),
    (
        "object of ints",
        lambda: pd.DataFrame({"n": pd.Series([1, 2], dtype=object)}),
        ["column 'n'", "dtype object holding int64"],
    ),
    (
        "object of dates",
        lambda: pd.DataFrame({"d": pd.Series([pd.Timestamp(0).date()], dtype=object)}),
        ["column 'd'", "object holding date32"],
    ),
    (
        "struct",
        lambda: pd.DataFrame(
            {"s": pd.Series([{"a": 1}], dtype=pd.ArrowDtype(pa.struct([("a", pa.int64())])))}
        ),
        ["column 's'", "struct<a: int64>"],
    ),
    (
        "period",
        lambda: pd.DataFrame({"p": pd.period_range("2020-01", periods=2, freq="M")}),
        ["column 'p'", "period[M]"],
    ),
    ("interval", lambda: pd.DataFrame({"i": pd.interval_range(0, 2)}), ["column 'i'", "interval"]),
    ("complex", lambda: pd.DataFrame({"z": [1j, 2j]}), ["column 'z'", "complex128"]),
    (
        "sparse",
        lambda: pd.DataFrame({"sp": pd.arrays.SparseArray([1.0, 0.0])}),
        ["column 'sp'", "Sparse"],
    ),
    (
        "int column name",
        lambda: pd.DataFrame({0: [1], "b": [2]}),
        ["column 0", "name of type int", "dtype int64"],
    ),
    (
        "tuple column names",
        lambda: pd.DataFrame([[1]], columns=pd.MultiIndex.from_tuples([("a", "b")])),
        ["column ('a', 'b')", "name of type tuple"],
    ),
    (
        "lone surrogate in a name",
        lambda: pd.DataFrame([[1]], columns=pd.Index(["bad\ud800"], dtype=object)),
        ["'bad\\ud800'", "not valid Unicode"],
    ),
    (
        "int index name",
        lambda: pd.DataFrame({"a": [1]}, index=pd.Index([7], name=5)),
        ["index level 0 (5)", "name of type int"],
    ),
    (
        "list index",
        lambda: pd.DataFrame({"a": [1]}, index=pd.Index([(1, 2)], tupleize_cols=False)),
        ["index level 0 (unnamed)", "object"],
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "fragments"), UNSUPPORTED, ids=[c[0] for c in UNSUPPORTED]
)
def test_unsupported_columns_raise_naming_column_and_dtype(
    case: str, make: Callable[[], pd.DataFrame], fragments: list[str]
) -> None:
    with pytest.raises(UnsupportedColumnError) as raised:
        canonical_digest(make())
    for fragment in fragments:
        assert fragment in str(raised.value), (case, str(raised.value))
    assert isinstance(raised.value, DigestError)


def test_errors_never_quote_cell_values() -> None:
    secret = "TOP-SECRET-CELL-VALUE"
    frame = pd.DataFrame({"mixed": pd.Series([1, secret], dtype=object)})
    with pytest.raises(UnsupportedColumnError) as raised:
        canonical_digest(frame)
    assert secret not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_unsupported_arrow_columns_raise_naming_column_and_type() -> None:
    table = pa.table({"ok": [1], "nested": pa.array([[1, 2]])})
    with pytest.raises(
        UnsupportedColumnError, match=r"column 'nested' has dtype list<item: int64>"
    ):
        canonical_digest_table(table)
    dictionary_of_lists = pa.DictionaryArray.from_arrays(pa.array([0]), pa.array([[1]]))
    with pytest.raises(
        UnsupportedColumnError, match=r"column 'dl' has dtype dictionary<values=list"
    ):
        canonical_digest_table(pa.table({"dl": dictionary_of_lists}))


def test_ordered_dictionary_chunks_must_agree_on_the_order() -> None:
    first = pa.DictionaryArray.from_arrays(pa.array([0, 1]), pa.array(["lo", "hi"]), ordered=True)
    second = pa.DictionaryArray.from_arrays(pa.array([0, 1]), pa.array(["hi", "lo"]), ordered=True)
    table = pa.table({"level": pa.chunked_array([first, second])})
    with pytest.raises(
        UnsupportedColumnError, match=r"column 'level'.*category order is ambiguous"
    ):
        canonical_digest_table(table)
    same = pa.table({"level": pa.chunked_array([first, first.slice(1)])})
    assert canonical_digest_table(same) == canonical_digest_table(
        pa.table({"level": pa.concat_arrays([first, first.slice(1)])})
    )


@pytest.mark.parametrize(
    "metadata",
    [
        b"not json",
        b'{"columns": []}',
        b'{"index_columns": [{"kind": "weird"}]}',
        b'{"index_columns": [{"kind": "range", "start": 0, "stop": "3", "step": 1}]}',
        b'{"index_columns": [{"kind": "range", "start": 0, "stop": 3, "step": 0}]}',
    ],
)
def test_malformed_pandas_metadata_is_a_clear_error(metadata: bytes) -> None:
    table = pa.table({"a": [1, 2, 3]}).replace_schema_metadata({b"pandas": metadata})
    with pytest.raises(DigestError, match="'pandas' schema metadata is malformed"):
        canonical_digest_table(table)


# --- DataFrame path == Arrow path -------------------------------------------------------


def test_dataframe_and_table_agree_across_index_kinds() -> None:
    frame = sample_frame()
    variants = {
        "default": frame,
        "sliced": frame.iloc[1:3],
        "named range": frame.rename_axis("row"),
        "string index": frame.set_index("text"),
        "multi index": frame.set_index(["colour", "id"]),
        "datetime index": frame.set_index("when"),
        "empty": frame.iloc[0:0],
        "no columns": frame[[]],
    }
    for name, variant in variants.items():
        table = pa.Table.from_pandas(variant)
        assert canonical_digest_table(table) == canonical_digest(variant), name
        assert stream_of_frame(variant) == reference_stream_of_frame(variant), name
    assert len({canonical_digest(v) for v in variants.values()}) == len(variants)


def test_table_to_pandas_round_trip_keeps_the_digest_for_round_tripping_types() -> None:
    frame = sample_frame().set_index(["text", "id"])
    table = pa.Table.from_pandas(frame)
    assert canonical_digest(table.to_pandas()) == canonical_digest_table(table)


# --- wide and tall ----------------------------------------------------------------------


def test_wide_frame_of_two_thousand_columns() -> None:
    rng = np.random.default_rng(3)
    wide = pd.DataFrame(rng.integers(0, 9, size=(10, 2000)), columns=[f"c{i}" for i in range(2000)])
    digest = canonical_digest(wide)
    assert canonical_digest_table(pa.Table.from_pandas(wide)) == digest
    assert canonical_digest(wide.rename(columns={"c1999": "c2000"})) != digest
    swapped = wide[[*wide.columns[:-2], "c1999", "c1998"]]
    assert canonical_digest(swapped) != digest


def test_tall_frame_of_a_million_rows_is_fast_and_exact() -> None:
    tall = large_random_frame(1_000_000)
    started = time.perf_counter()
    digest = canonical_digest(tall)
    elapsed = time.perf_counter() - started
    # Generous bound for a loaded CI machine; a per-row Python loop would take tens of seconds.
    assert elapsed < 5.0, f"digest of 1,000,000 rows took {elapsed:.2f}s"
    assert canonical_digest_table(pa.Table.from_pandas(tall)) == digest
    last = tall.copy()
    last.loc[999_999, "label"] = "changed"
    assert canonical_digest(last) != digest


# --- test vectors -----------------------------------------------------------------------


def test_vectors_file_is_current_and_covers_the_type_families() -> None:
    vectors = load_vectors()
    assert vectors["version"] == DIGEST_VERSION
    assert len(vectors["vectors"]) >= 10
    tags = b"".join(bytes.fromhex(v["stream_hex"]) for v in vectors["vectors"])
    for tag in [
        b"int8",
        b"uint64",
        b"float32",
        b"float64",
        b"bool",
        b"utf8",
        b"binary",
        b"dictionary<utf8>",
        b"dictionary<utf8,ordered>",
        b"timestamp[us,UTC]",
        b"date32",
        b"duration[s]",
        b"decimal128(10,2)",
        b"null",
    ]:
        assert tag in tags, tag


@pytest.mark.parametrize("vector", load_vectors()["vectors"], ids=lambda v: v["name"])
def test_vector(vector: dict[str, Any]) -> None:
    frame = frame_from_description(vector["frame"])
    stream = stream_of_frame(frame)
    assert stream.hex() == vector["stream_hex"]
    assert reference_stream_of_frame(frame).hex() == vector["stream_hex"]
    assert blake3.blake3(stream).hexdigest() == vector["digest_hex"]
    assert canonical_digest(frame).hex() == vector["digest_hex"]
    if frame.columns.is_unique:  # Table.from_pandas refuses duplicate column names
        assert canonical_digest_table(pa.Table.from_pandas(frame)).hex() == vector["digest_hex"]


# --- the fast implementation against the reference, on random tables ------------------

_INT_TYPES = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
]


def _int_values(arrow_type: Any) -> st.SearchStrategy[int]:
    bits = arrow_type.bit_width
    if pa.types.is_signed_integer(arrow_type):
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return st.integers(0, 2**bits - 1)


_NAN_BITS = st.integers(0x7FF0000000000001, 0x7FFFFFFFFFFFFFFF).map(lambda b: _float_bits(b, 64))

COLUMN_KINDS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    *((t, _int_values(t)) for t in _INT_TYPES),
    (pa.float64(), st.floats() | _NAN_BITS | st.just(-0.0)),
    (pa.float32(), st.floats(width=32)),
    (pa.float16(), st.floats(width=16)),
    (pa.bool_(), st.booleans()),
    (pa.string(), st.text(max_size=8)),
    (pa.large_string(), st.text(max_size=8)),
    (pa.string_view(), st.text(max_size=20)),
    (pa.binary(), st.binary(max_size=8)),
    (pa.binary(3), st.binary(min_size=3, max_size=3)),
    (pa.date32(), st.integers(-(10**5), 10**5)),
    (pa.date64(), st.integers(-(10**5), 10**5).map(lambda d: d * 86_400_000)),
    (pa.time32("ms"), st.integers(0, 86_399_999)),
    (pa.time64("ns"), st.integers(0, 86_399_999_999_999)),
    (pa.timestamp("s"), st.integers(-(2**40), 2**40)),
    (pa.timestamp("ns", tz="UTC"), st.integers(-(2**62), 2**62)),
    (pa.timestamp("ms", tz="+05:30"), st.integers(-(2**50), 2**50)),
    (pa.duration("us"), st.integers(-(2**62), 2**62)),
    (pa.decimal128(10, 2), st.decimals(-(10**7), 10**7, places=2, allow_nan=False)),
    (pa.decimal256(40, 5), st.decimals(-(10**30), 10**30, places=5, allow_nan=False)),
    (pa.null(), st.none()),
    (pa.dictionary(pa.int8(), pa.string()), st.sampled_from(["a", "b", "c"])),
    (pa.dictionary(pa.int16(), pa.int64(), ordered=True), st.integers(0, 3)),
]


def _build(arrow_type: Any, values: list[Any]) -> Any:
    if pa.types.is_dictionary(arrow_type):
        value_type = arrow_type.value_type
        if arrow_type.ordered:
            categories = pa.array(range(4), type=value_type)
            indices = pa.array(values, type=arrow_type.index_type)
            return pa.DictionaryArray.from_arrays(indices, categories, ordered=True)
        return pa.array(values, type=value_type).dictionary_encode()
    if pa.types.is_floating(arrow_type) and arrow_type.bit_width == 16:
        mask = np.array([v is None for v in values], dtype=bool)
        raw = np.array([0.0 if v is None else v for v in values], dtype=np.float16)
        return pa.array(raw, type=arrow_type, mask=mask)
    return pa.array(values, type=arrow_type)


@st.composite
def column_cases(draw: st.DrawFn, rows: int) -> tuple[Any, Any, Any]:
    """One column three ways: contiguous, split into chunks, and as a slice of a larger array."""
    arrow_type, value_strategy = draw(st.sampled_from(COLUMN_KINDS))
    values = draw(st.lists(st.none() | value_strategy, min_size=rows, max_size=rows))
    contiguous = _build(arrow_type, values)
    cuts = sorted(draw(st.lists(st.integers(0, rows), max_size=4)))
    bounds = [0, *cuts, rows]
    chunked = pa.chunked_array(
        [_build(arrow_type, values[a:b]) for a, b in itertools.pairwise(bounds)],
        type=contiguous.type,
    )
    pad = draw(st.lists(st.none() | value_strategy, min_size=1, max_size=3))
    sliced = _build(arrow_type, pad + values + pad).slice(len(pad), rows)
    return contiguous, chunked, sliced


@st.composite
def table_cases(draw: st.DrawFn) -> tuple[pa.Table, pa.Table, pa.Table]:
    rows = draw(st.integers(0, 12))
    count = draw(st.integers(0, 4))
    names = draw(st.lists(st.text(max_size=4), min_size=count, max_size=count))
    cases = [draw(column_cases(rows)) for _ in range(count)]
    tables = [
        pa.Table.from_arrays([case[form] for case in cases], names=names)
        if cases
        else pa.table({}).slice(0, 0)
        for form in range(3)
    ]
    return tables[0], tables[1], tables[2]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table_cases())
def test_fast_stream_matches_the_reference_on_random_tables(
    tables: tuple[pa.Table, pa.Table, pa.Table],
) -> None:
    contiguous, chunked, sliced = tables
    expected = reference_stream_of_table(contiguous)
    assert stream_of_table(contiguous) == expected
    assert stream_of_table(chunked) == expected
    assert stream_of_table(sliced) == expected


_PANDAS_COLUMNS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("int64", st.integers(-(2**63), 2**63 - 1)),
    ("Int32", st.none() | st.integers(-(2**31), 2**31 - 1)),
    ("float64", st.none() | st.floats()),
    ("float32", st.floats(width=32)),
    ("boolean", st.none() | st.booleans()),
    ("str", st.none() | st.text(max_size=6)),
    ("object", st.none() | st.text(max_size=6)),
    ("category", st.none() | st.sampled_from(["x", "y"])),
    (
        "datetime64[ns]",
        st.none() | st.integers(-(2**62), 2**62).map(lambda n: pd.Timestamp(n, unit="ns")),
    ),
]


@st.composite
def pandas_frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 8))
    kinds = draw(st.lists(st.sampled_from(_PANDAS_COLUMNS), max_size=4))
    data = {
        f"c{i}": pd.Series(draw(st.lists(values, min_size=rows, max_size=rows)), dtype=dtype)
        for i, (dtype, values) in enumerate(kinds)
    }
    frame = pd.DataFrame(data, index=pd.RangeIndex(rows))
    index_kind = draw(st.sampled_from(["default", "offset", "strings", "multi", "named"]))
    if index_kind == "offset":
        start = draw(st.integers(1, 5))
        frame.index = pd.RangeIndex(start, start + rows)
    elif index_kind == "strings":
        frame.index = pd.Index([f"r{i}" for i in range(rows)], name="key")
    elif index_kind == "multi":
        frame.index = pd.MultiIndex.from_arrays(
            [[i % 2 for i in range(rows)], range(rows)], names=["half", None]
        )
    elif index_kind == "named":
        frame.index = frame.index.rename("row")
    return frame


@settings(max_examples=150, deadline=None)
@given(pandas_frames())
def test_random_frames_agree_with_their_tables_and_the_reference(frame: pd.DataFrame) -> None:
    digest = canonical_digest(frame)
    assert canonical_digest_table(pa.Table.from_pandas(frame)) == digest
    assert stream_of_frame(frame) == reference_stream_of_frame(frame)


@pytest.mark.bench
def test_benchmark_script_prints_its_markdown_rows() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_digest.py"),
            "--rows",
            "5000",
            "--repeat",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| canonical_digest")]
    assert len(rows) == 2
    assert all(line.endswith("x |") for line in rows)
