"""``elspeth view`` on large runs: time to the first page and to apply a filter, against reading
the Parquet files alone and a plain pyarrow filter of the same columns, in one run.

For each size, a run directory is written as the suite runner writes one (three experiments'
``<experiment>__results__parquet.parquet`` files with the sample suite's columns, a manifest with
their BLAKE3 digests, an audit log with ``run_started`` and one ``llm_result`` per answer), from a
fixed seed; the answers are synthetic, so that 100,000 rows do not need 600,000 mock calls. Then,
alternating round by round (median of ``--repeats`` after a warm-up round):

* first page: ``open_run`` (digests, audit index), the side-by-side table, the summary and the
  first page of rows, as the server answers the page's first requests; floor: ``pq.read_table``
  of the three results files;
* a filter: the expression ``urgency_score < 3 and region == "North"`` through ``page`` (compile,
  filter, the page's rows); floor: ``Table.filter`` of the baseline's results with the same
  condition on the same two columns (the aim: at most 4x);
* a search and "different only", through ``page``, beside the same floor.

``--browser`` adds, where Debian's Chromium is installed, the time from opening the viewer's URL
in headless Chromium to the table being drawn, over the real server. Prints a markdown table for
docs/performance.md.

    .venv/bin/python bench/bench_view.py [--sizes 1000,10000,100000] [--repeats 3] [--browser]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_workers import alternating
from elspeth.audit import Attempt, LlmResult, RunStarted
from elspeth.sinks._files import file_digest_hex
from elspeth.suite._audit import AuditLog
from elspeth.view import ViewServer, open_run, viewed_runs
from elspeth.view._query import Query, page
from elspeth.view._server import _summary

EXPERIMENTS = ("baseline", "terse_prompt", "second_opinion")
CRITERIA = ("urgency", "clarity")
REGIONS = ("North", "South", "East", "West")
AREAS = ("benefits", "housing", "waste", "transport", "licensing", "parks")
WORDS = [
    "the",
    "form",
    "heating",
    "repair",
    "bin",
    "collection",
    "street",
    "light",
    "noise",
    "parking",
    "permit",
    "council",
]
FILTER = 'urgency_score < 3 and region == "North"'
RUN_ID = "20261204T000000Z-bench0"


def _results(rows: int, rng: random.Random) -> pa.Table:
    columns: dict[str, Any] = {
        "_row": list(range(rows)),
        "request_id": [f"SR-{10000 + i}" for i in range(rows)],
        "region": [rng.choice(REGIONS) for _ in range(rows)],
        "service_area": [rng.choice(AREAS) for _ in range(rows)],
        "message": [" ".join(rng.choices(WORDS, k=12)) for _ in range(rows)],
    }
    for criterion in CRITERIA:
        scores = [rng.randint(1, 5) for _ in range(rows)]
        columns[f"{criterion}_response"] = [
            json.dumps({"score": s, "rationale": " ".join(rng.choices(WORDS, k=10))})
            for s in scores
        ]
        columns[f"{criterion}_outcome"] = ["ok"] * rows
        columns[f"{criterion}_prompt_tokens"] = [90] * rows
        columns[f"{criterion}_completion_tokens"] = [27] * rows
        columns[f"{criterion}_cost"] = [0.0000875] * rows
        columns[f"{criterion}_latency_ms"] = [rng.uniform(20, 80) for _ in range(rows)]
        columns[f"{criterion}_score"] = [float(s) for s in scores]
    return pa.table(columns)


def write_run(directory: Path, rows: int, seed: int = 20241204) -> Path:
    """A run directory with ``rows`` rows in each of the three experiments."""
    rng = random.Random(seed)
    directory.mkdir(parents=True)
    artifacts = []
    inputs: pa.Table | None = None
    for experiment in EXPERIMENTS:
        table = _results(rows, rng)
        if inputs is None:
            inputs = table.select(["_row", "request_id", "region", "service_area", "message"])
        else:  # every experiment answers the same inputs
            for name in inputs.column_names:
                table = table.set_column(table.column_names.index(name), name, inputs[name])
        path = directory / f"{experiment}__results__parquet.parquet"
        pq.write_table(table, path)
        artifacts.append(
            {
                "path": path.name,
                "format": "parquet",
                "classification": "OFFICIAL",
                "rows": rows,
                "blake3": file_digest_hex(path),
            }
        )
    # The real audit log and event types, so the lines are what a run writes.
    audit = AuditLog(directory / "audit.jsonl", RUN_ID)
    audit.record(RunStarted(suite="bench", resumed=False, experiments=EXPERIMENTS,
                            baseline=EXPERIMENTS[0]))  # fmt: skip
    attempt = (Attempt(number=1, outcome="ok", status=200, latency_ms=41.2, retry_delay_ms=None),)
    for experiment in EXPERIMENTS:
        for row in range(rows):
            for criterion in CRITERIA:
                audit.record(
                    LlmResult(
                        experiment=experiment, row=row, criterion=criterion, repeat=0,
                        outcome="ok", error_kind=None, error_message=None, attempt_count=1,
                        retry_reasons=(), attempts=attempt, prompt_tokens=90,
                        completion_tokens=27, cost="0.0000875", cached=False, latency_ms=41.2,
                    )
                )  # fmt: skip
    audit.close()
    manifest = {
        "format": "elspeth-run-manifest-v1",
        "run_id": RUN_ID,
        "status": "complete",
        "reason": None,
        "classification": "OFFICIAL",
        "artifacts": artifacts,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return directory


def first_page(directory: Path) -> Any:
    viewed = viewed_runs([open_run(directory)], None)
    _summary(viewed, {})
    return viewed, page(viewed.view, Query())


def read_parquet(directory: Path) -> list[pa.Table]:
    return [pq.read_table(directory / f"{e}__results__parquet.parquet") for e in EXPERIMENTS]


def plain_filter(table: pa.Table) -> pa.Table:
    condition = (pc.field("urgency_score") < 3) & (pc.field("region") == "North")
    return table.select(["urgency_score", "region"]).filter(condition)


def browser_seconds(viewed: Any, repeats: int) -> float | None:
    """Median seconds from opening the URL to the table drawn, in headless Chromium."""
    chromium, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and driver_path.exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = str(chromium)
    profile = tempfile.mkdtemp(prefix="elspeth-bench-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    server = ViewServer(viewed, "127.0.0.1", 0, "b" * 32)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    times = []
    try:
        for _ in range(repeats + 1):
            started = time.perf_counter()
            driver.get(server.url())
            WebDriverWait(driver, 120).until(
                lambda d: d.execute_script(
                    "return document.querySelectorAll('#table tbody tr').length > 0"
                )
            )
            times.append(time.perf_counter() - started)
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",") if size]
    base = Path(tempfile.mkdtemp(prefix="elspeth-bench-view-"))
    results = []
    for rows in sizes:
        directory = write_run(base / f"run-{rows}", rows)
        viewed, _ = first_page(directory)
        view = viewed.view
        baseline = pq.read_table(directory / "baseline__results__parquet.parquet")
        queries = {
            "filter": Query(expression=FILTER),
            "search": Query(search="heating repair"),
            "different": Query(mode="different"),
        }
        functions = [
            lambda d=directory: first_page(d),
            lambda d=directory: read_parquet(d),
            lambda t=baseline: plain_filter(t),
            *(lambda q=q, v=view: page(v, q) for q in queries.values()),
        ]
        (opened, parquet, plain, *filtered), answers = alternating(functions, options.repeats)
        matches = {name: answers[3 + i]["total"] for i, name in enumerate(queries)}  # type: ignore[index]
        assert matches["filter"] == plain_filter(baseline).num_rows
        browser = browser_seconds(viewed, options.repeats) if options.browser else None
        results.append((rows, opened, parquet, plain, filtered, matches, browser))

    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, pyarrow "
        f"{pa.__version__}; {len(EXPERIMENTS)} experiments x {len(CRITERIA)} criteria; median "
        f"of {options.repeats} alternating rounds -->"
    )
    print(
        "| rows x 3 | first page | read Parquet | ratio | filter (matches) | plain pyarrow filter "
        "| filter / plain (aim <= 4x) | search | different only | browser: table drawn |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rows, opened, parquet, plain, (filtered, search, different), matches, browser in results:
        shown = f"{browser:.3f} s" if browser is not None else "not measured"
        print(
            f"| {rows:,} | {opened:.3f} s | {parquet:.3f} s | {opened / parquet:.1f}x "
            f"| {filtered * 1000:.1f} ms ({matches['filter']:,}) | {plain * 1000:.1f} ms "
            f"| {filtered / plain:.2f}x | {search * 1000:.1f} ms ({matches['search']:,}) "
            f"| {different * 1000:.1f} ms | {shown} |"
        )
    print()
    for rows, _, _, plain, (filtered, _, _), _, _ in results:
        print(f"ratio filter/plain at {rows:,} rows: {filtered / plain:.2f}x")


if __name__ == "__main__":
    main()
