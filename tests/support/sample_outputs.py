"""Digests of the sample suite's data files, with the columns that time the model left out.

The sample runs the offline ``mock`` model, so every answer, score and statistic is the same on
every run; only measured latencies differ. ``tests/vectors/sample_outputs.json`` holds the
digests of a run from before the runner was rebuilt: a change that alters any other cell of a
data file shows up as a changed digest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

#: Columns that hold wall-clock measurements (a row's latency, a summary's latency quantiles).
TIMED = "latency"


def data_digests(run_dir: Path) -> dict[str, str]:
    """SHA-256 per data file (CSV read as text, Parquet as typed columns), timed columns out."""
    digests = {}
    for path in sorted(run_dir.glob("*.csv")) + sorted(run_dir.glob("*.parquet")):
        if path.suffix == ".csv":
            # The first line is the classification marking; cells are compared as written.
            frame = pd.read_csv(path, skiprows=1, dtype=str, keep_default_na=False)
        else:
            frame = pd.read_parquet(path)
        kept = frame[[column for column in frame.columns if TIMED not in column]]
        digest = hashlib.sha256(",".join(f"{c}:{t}" for c, t in kept.dtypes.items()).encode())
        digest.update(pd.util.hash_pandas_object(kept, index=True).to_numpy().tobytes())
        digests[path.name] = digest.hexdigest()
    return digests
