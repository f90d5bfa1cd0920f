"""The whole pipeline against the LLM fan-out floor: a suite run in standalone mode vs a bare
aiohttp client doing the same requests, in the same run.

A loopback OpenAI-compatible server with a fixed latency runs in its own process (its CPU stays
off the client's event loop). Against it, in alternating rounds after one untimed warm-up each:

* the floor: ``bench_llm_fanout.bare_client`` (aiohttp and json only, ``concurrency`` workers);
* the pipeline: ``SuiteRunner`` in this process, exactly what ``python -m elspeth.cli`` runs —
  a private daemon, plugin catalog in a worker, clearance plan, CSV datasource minted through the
  daemon, the LLM stage with the ``openai`` client (one criterion, no cache, ``max_retries: 0``),
  every answer checkpointed (MAC'd by the daemon) and audited, no plugins, one CSV sink.

The pipeline is timed twice: the whole run (start-up of the daemon and catalog worker, load,
fan-out, sink, manifest) and its fan-out phase alone (from the chunk's seal check before the
first request to the stage's end, from the run's own audit log). Efficiency is
``ideal / wall`` with ``ideal = rows x latency / concurrency``; "vs floor" divides by the
floor's efficiency (the aim is at least 0.9 for the fan-out phase). Prints a markdown table.

    .venv/bin/python bench/bench_pipeline.py [--rows 2000] [--concurrency 50] [--latency 0.05]
        [--rounds 3] [--profile]

``--profile`` adds one profiled pipeline run (cProfile on the thread that runs the event loop)
and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import platform
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

# The repository (for tests.support) and this directory (for the floor's module).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support.openai_server import serve_in_subprocess

from bench_llm_fanout import MODEL, TEMPLATE, bare_client, make_rows, measure
from elspeth.config import load_suite
from elspeth.suite import LogProgress, RunOptions, SuiteRunner


@dataclass(frozen=True)
class PipelineTiming:
    wall: float
    cpu: float
    fan_out: float
    answers: int


def write_suite(
    directory: Path, base_url: str, rows: list[dict[str, str]], concurrency: int
) -> Path:
    """The same rows and prompt as the floor's requests, as a settings file and a CSV."""
    with (directory / "rows.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ticket", "text"])
        writer.writeheader()
        writer.writerows(rows)
    settings = {
        "suite": {"name": "bench-pipeline"},
        "datasource": {
            "type": "csv",
            "path": "rows.csv",
            "classification": "OFFICIAL",
            "clearance": "OFFICIAL",
            "columns": {"ticket": "string", "text": "string"},
        },
        "models": {
            "loopback": {
                "type": "openai",
                "clearance": "OFFICIAL",
                "base_url": base_url,
                "model": MODEL,
                "timeout": 30,
            }
        },
        "prompt_packs": {"bench": {"criteria": {"score": TEMPLATE}}},
        "sinks": {"results": {"type": "csv", "clearance": "OFFICIAL"}},
        "defaults": {
            "model": "loopback",
            "prompt_pack": "bench",
            "sinks": ["results"],
            "concurrency": concurrency,
            "max_retries": 0,
            "cache": False,
        },
        "experiments": [{"name": "bench", "baseline": True}],
    }
    path = directory / "suite.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False), "utf-8")
    return path


def fan_out_seconds(run_dir: Path) -> float:
    """From the first chunk's seal check (just before the first request) to the stage's end."""
    events = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    start = next(e["ts"] for e in events if e["event"] == "seal_verified")
    end = next(e["ts"] for e in events if e["event"] == "llm_stage_done")
    return float(end - start)


def run_pipeline(
    settings: Path, work: Path, profile: cProfile.Profile | None = None
) -> PipelineTiming:
    suite = load_suite(settings)
    runner = SuiteRunner(suite, RunOptions(output_dir=work / "out", state_dir=work / "state"))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    try:
        summary = runner.run(LogProgress())
    finally:
        if profile is not None:
            profile.disable()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return PipelineTiming(
        wall, cpu, fan_out_seconds(summary.run_dir), summary.experiments[0].answers
    )


def run_floor(
    base_url: str, rows: list[dict[str, str]], concurrency: int
) -> tuple[float, float, int]:
    return measure(lambda: bare_client(base_url, rows, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    rows = make_rows(args.rows)
    ideal = args.rows * args.latency / args.concurrency
    floor_walls: list[float] = []
    floor_cpus: list[float] = []
    pipelines: list[PipelineTiming] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch,
        serve_in_subprocess(args.latency) as server,
    ):
        root = Path(scratch)
        settings = write_suite(root, server.base_url, rows, args.concurrency)

        def pipeline_once(label: str, profile: cProfile.Profile | None = None) -> PipelineTiming:
            work = root / label
            work.mkdir()
            timing = run_pipeline(settings, work, profile)
            if timing.answers != args.rows:
                raise SystemExit(f"pipeline: {timing.answers} of {args.rows} answers")
            return timing

        run_floor(server.base_url, rows, args.concurrency)  # warm-up
        pipeline_once("warm-up")
        for round_number in range(args.rounds):
            wall, cpu, ok = run_floor(server.base_url, rows, args.concurrency)
            if ok != args.rows:
                raise SystemExit(f"floor: {ok} of {args.rows} requests succeeded")
            floor_walls.append(wall)
            floor_cpus.append(cpu)
            pipelines.append(pipeline_once(f"round-{round_number}"))
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            pipeline_once("profiled", profile)
    floor_wall = statistics.median(floor_walls)
    floor_eff = ideal / floor_wall
    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, {args.rows} rows x 1 criterion, concurrency "
        f"{args.concurrency}, latency {args.latency * 1000:g} ms, median of {args.rounds} "
        f"alternating rounds; server saw {server.stats.get('request_count')} requests, at most "
        f"{server.stats.get('max_concurrent')} at once -->"
    )
    print("| path | wall (s) | efficiency vs ideal | vs floor | client CPU per row (ms) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| ideal (rows x latency / concurrency) | {ideal:.3f} | 1.00 | | |")
    table: list[tuple[str, float, float | None]] = [
        ("bare aiohttp client (floor)", floor_wall, statistics.median(floor_cpus)),
        (
            "pipeline: fan-out phase (first seal check to stage end)",
            statistics.median(p.fan_out for p in pipelines),
            None,
        ),
        (
            "pipeline: whole run (daemon, catalog worker, load, sink, manifest)",
            statistics.median(p.wall for p in pipelines),
            statistics.median(p.cpu for p in pipelines),
        ),
    ]
    for name, wall, cpu in table:
        efficiency = ideal / wall
        cpu_text = "" if cpu is None else f"{cpu / args.rows * 1000:.3f}"
        ratio = efficiency / floor_eff
        print(f"| {name} | {wall:.3f} | {efficiency:.2f} | {ratio:.2f} | {cpu_text} |")
    if profile is not None:
        print("\nProfiled pipeline run, by own time (cProfile, event-loop thread):\n")
        stats = pstats.Stats(profile)
        stats.sort_stats(pstats.SortKey.TIME).print_stats(25)
        stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(40)


if __name__ == "__main__":
    main()
