"""Regenerate tests/vectors/digest_vectors.json from the frame descriptions below.

Run from the repository root: ``.venv/bin/python tests/vectors/make_digest_vectors.py``. Only do so
together with a new DIGEST_VERSION, or to add vectors: the point of the file is that the digest of
an existing vector never changes silently. The format is described in docs/canonical-digest.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "src")]

import blake3  # noqa: E402
from tests.security.digest_frames import frame_from_description, stream_of_frame  # noqa: E402

from elspeth.security import DIGEST_VERSION  # noqa: E402

OUTPUT = REPO / "tests" / "vectors" / "digest_vectors.json"


def column(name: str | None, dtype: str, values: list[Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "values": values, **extra}


VECTORS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "empty",
        "no rows, no columns, default index",
        {"index": None, "columns": []},
    ),
    (
        "empty_typed_columns",
        "no rows; the columns and their types still count",
        {"index": None, "columns": [column("a", "int64", []), column("b", "str", [])]},
    ),
    (
        "integers",
        "every integer width, signed and unsigned, at their extremes",
        {
            "index": None,
            "columns": [
                column("i8", "int8", [-128, 0, 127]),
                column("i16", "int16", [-32768, 1, 32767]),
                column("i32", "int32", [-(2**31), 2, 2**31 - 1]),
                column("i64", "int64", [-(2**63), 3, 2**63 - 1]),
                column("u8", "uint8", [0, 1, 255]),
                column("u16", "uint16", [0, 2, 65535]),
                column("u32", "uint32", [0, 3, 2**32 - 1]),
                column("u64", "uint64", [0, 4, 2**64 - 1]),
            ],
        },
    ),
    (
        "floats",
        "float32/float64: pandas NaN is a null; Arrow NaN payloads hash as one NaN; -0.0 as +0.0",
        {
            "index": None,
            "columns": [
                column("f32", "float32", [1.5, "nan", "-0.0", "inf"]),
                column("f64", "float64", [0.1, "-inf", "nan", "-0.0"]),
                column(
                    "arrow_f64",
                    "arrow:double",
                    ["bits:7ff8000000000123", "-0.0", None, "bits:fff0000000000001"],
                ),
            ],
        },
    ),
    (
        "booleans_and_nullable",
        "bool, and the pandas nullable Int64, boolean and Float64 dtypes with missing values",
        {
            "index": None,
            "columns": [
                column("flag", "bool", [True, False, True]),
                column("maybe", "boolean", [True, None, False]),
                column("count", "Int64", [None, 7, -7]),
                column("share", "Float64", [0.25, None, 1.0]),
            ],
        },
    ),
    (
        "strings",
        "str, object and string[python] columns with nulls, empty strings and non-ASCII text",
        {
            "index": None,
            "columns": [
                column("s", "str", ["alpha", None, "", "ünïcødé ✓"]),
                column("o", "object", ["a", "bc", None, "def"]),
                column("p", "string[python]", [None, None, "x", "yz"]),
            ],
        },
    ),
    (
        "categoricals",
        "an unordered categorical (values only) and an ordered one (category order hashed)",
        {
            "index": None,
            "columns": [
                column("colour", "category", ["red", None, "blue", "red"]),
                column(
                    "severity",
                    "category",
                    ["low", "high", "low", None],
                    categories=["low", "medium", "high"],
                    ordered=True,
                ),
            ],
        },
    ),
    (
        "temporal",
        "timestamps with and without time zone, a duration, a date and a time of day",
        {
            "index": None,
            "columns": [
                column("naive_ns", "datetime64[ns]", ["2024-02-29T12:34:56.789012345", None]),
                column("utc_us", "datetime64[us, UTC]", ["1969-12-31T23:59:59", "2038-01-19"]),
                column("london_ms", "datetime64[ms, Europe/London]", ["2024-07-01T09:00", None]),
                column("wait", "timedelta64[s]", ["1 days 00:00:01", None]),
                column("day", "arrow:date32", ["2000-01-01", None]),
                column("clock", "arrow:time64[ns]", ["23:59:59.999999", None]),
            ],
        },
    ),
    (
        "binary_decimal_null",
        "bytes, decimals of two widths, and a column with nothing but missing values",
        {
            "index": None,
            "columns": [
                column("blob", "arrow:binary", ["00ff", None, ""]),
                column("price", "arrow:decimal128(10,2)", ["-12.34", "0.01", None]),
                column(
                    "big",
                    "arrow:decimal256(40,5)",
                    ["123456789012345678901234567890.12345", None, "-1"],
                ),
                column("nothing", "object", [None, None, None]),
            ],
        },
    ),
    (
        "sliced_frame_index",
        "the offset RangeIndex of df.iloc[5:8] is hashed as an unnamed int64 index level",
        {"index": {"range": [5, 8, 1], "name": None}, "columns": [column("v", "int64", [5, 6, 7])]},
    ),
    (
        "named_string_index",
        "a named str index is hashed as a leading column with its name",
        {
            "index": {"levels": [column("key", "str", ["k1", "k2", "k3"])]},
            "columns": [column("v", "float64", [1.0, 2.0, 3.0])],
        },
    ),
    (
        "multi_index",
        "a two-level MultiIndex, one level unnamed",
        {
            "index": {
                "levels": [
                    column("region", "str", ["north", "north", "south"]),
                    column(None, "int32", [1, 2, 1]),
                ]
            },
            "columns": [column("v", "str", ["a", "b", None])],
        },
    ),
    (
        "awkward_names",
        "duplicate, empty and non-ASCII column names; order is significant",
        {
            "index": None,
            "columns": [
                column("x", "int64", [1]),
                column("x", "int64", [2]),
                column("", "int64", [3]),
                column("名前", "int64", [4]),
            ],
        },
    ),
]


def build() -> dict[str, Any]:
    vectors = []
    for name, comment, description in VECTORS:
        stream = stream_of_frame(frame_from_description(description))
        vectors.append(
            {
                "name": name,
                "comment": comment,
                "frame": description,
                "stream_hex": stream.hex(),
                "digest_hex": blake3.blake3(stream).hexdigest(),
            }
        )
    return {
        "version": DIGEST_VERSION,
        "about": "Canonical frame digests; format and layout in docs/canonical-digest.md. "
        "Regenerate with tests/vectors/make_digest_vectors.py.",
        "vectors": vectors,
    }


def main() -> None:
    OUTPUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(VECTORS)} vectors to {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
