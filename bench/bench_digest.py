"""Canonical digest against plain BLAKE3 over the same data, measured in one run.

The baseline is BLAKE3 over the Arrow IPC stream of the same table: the cheapest honest digest of
the same content, though not a canonical one (it embeds metadata, chunking and bytes under nulls).
The ratio is the price of canonicalization. Prints a markdown table for docs/performance.md.

    .venv/bin/python bench/bench_digest.py [--rows 1000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import blake3
import numpy as np
import pandas as pd
import pyarrow as pa

from elspeth.security import canonical_digest, canonical_digest_table


def make_frame(rows: int) -> pd.DataFrame:
    """A few numeric columns, a pandas str column and an object str column, some nulls."""
    rng = np.random.default_rng(20240601)
    amount = rng.normal(size=rows)
    amount[rng.random(rows) < 0.01] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "amount": amount,
            "ratio": rng.random(rows).astype(np.float32),
            "bucket": rng.integers(0, 100, rows).astype(np.int32),
            "label": pd.Series(rng.integers(0, 10**6, rows)).map("request-{}".format).astype(str),
            "note": pd.Series(rng.integers(0, 1000, rows).astype(str), dtype=object),
        }
    )


def ipc_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    action()  # warm caches and lazy imports outside the measurement
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    frame = make_frame(args.rows)
    table = pa.Table.from_pandas(frame)
    raw = ipc_bytes(table)
    assert canonical_digest(frame) == canonical_digest_table(table)

    plain = median_seconds(lambda: blake3.blake3(raw).digest(), args.repeat)
    cases = {
        "canonical_digest(DataFrame)": median_seconds(lambda: canonical_digest(frame), args.repeat),
        "canonical_digest_table(Table)": median_seconds(
            lambda: canonical_digest_table(table), args.repeat
        ),
    }
    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, "
        f"pandas {pd.__version__}, pyarrow {pa.__version__}, blake3 {blake3.__version__}, "
        f"{args.rows:,} rows x {frame.shape[1]} columns, IPC {raw.size / 1e6:.1f} MB, "
        f"median of {args.repeat} -->"
    )
    print("| digest | rows | canonical (ms) | plain BLAKE3 over Arrow IPC (ms) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in cases.items():
        print(
            f"| {name} | {args.rows:,} | {seconds * 1e3:.1f} | {plain * 1e3:.1f} "
            f"| {seconds / plain:.1f}x |"
        )


if __name__ == "__main__":
    main()
