"""Every benchmark script runs on a tiny input and prints its markdown table, so bench/ cannot rot.

Timings from these runs mean nothing and are not checked; the real numbers come from running the
scripts as documented in docs/performance.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.bench

# A tiny fan-out: 40 requests, 10 ms latency, one round.
FAN_OUT_SMOKE = ["--rows", "40", "--concurrency", "8", "--latency", "0.01", "--rounds", "1"]

SMOKE_ARGUMENTS = {
    "bench_digest.py": ["--rows", "2000", "--repeat", "1"],
    "bench_judge.py": ["--rows", "40", "--concurrency", "8", "--latency", "0.01", "--rounds", "1"],
    "bench_llm_fanout.py": FAN_OUT_SMOKE,
    "bench_pipeline.py": FAN_OUT_SMOKE,
    "bench_reports.py": ["--rows", "200", "--repeats", "1"],
    "bench_scoring.py": ["--rows", "300", "--repeats", "1"],
    "bench_sidecar.py": ["--quick"],
    "bench_view.py": ["--sizes", "200", "--repeats", "1"],
    "bench_workers.py": ["--rows", "2000", "--repeats", "1"],
}

# The scorers bench_scoring.py reports by default, each with its worker / in-process ratio.
SCORERS = ("exact", "token_f1", "bleu", "chrf")

# Lines a script must print besides its table (their values are not checked).
PRINTED = {
    "bench_judge.py": ["judge efficiency (bare / judge):"],
    # The rebuilt runner's aims, each as a ratio to its floor or against its bound.
    "bench_pipeline.py": [
        "(a) whole command",
        "(a) start-up",
        "(b) client CPU",
        "(c) answers per checkpoint record",
        "(d) worker RSS",
    ],
    "bench_scoring.py": [f"ratio {scorer}: worker/in-process" for scorer in SCORERS],
    "bench_view.py": ["ratio filter/plain at 200 rows:"],
}


def test_every_benchmark_has_a_smoke_run() -> None:
    assert sorted(SMOKE_ARGUMENTS) == sorted(p.name for p in (ROOT / "bench").glob("bench_*.py"))


@pytest.mark.parametrize("script", sorted(SMOKE_ARGUMENTS))
def test_benchmark_prints_its_table(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *SMOKE_ARGUMENTS[script]],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "|---" in result.stdout.replace(" ", "")
    for line in PRINTED.get(script, []):
        assert line in result.stdout, result.stdout
