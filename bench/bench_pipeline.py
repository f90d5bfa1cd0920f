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

A second table checks the rebuilt runner's four aims, each against its floor in the same run:

* (a) the whole command (``python -m elspeth.cli run`` as a subprocess, timed from launch to exit)
  at least 0.85x the floor's efficiency, and its start-up (launch to the first seal check, just
  before the first request, from the run's audit log) under 1 s;
* (b) client CPU per request (the in-process pipeline's own process, not the daemon's or the
  workers') at most 1.3x the floor's;
* (c) at least 32 answers per checkpoint record (answers / lines of the checkpoint file);
* (d) a worker's resident memory after its ``ready`` (``WorkerProcess`` in standalone mode) at
  most 1.5x a bare ``python -I -c "import pyarrow"``.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
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
from elspeth.orchestrator._runtime._config import RuntimeConfig
from elspeth.orchestrator._runtime._process import WorkerProcess
from elspeth.security import SecurityLevel
from elspeth.suite import LogProgress, RunOptions, SuiteRunner


@dataclass(frozen=True)
class PipelineTiming:
    wall: float
    cpu: float
    fan_out: float
    answers: int
    per_record: float


@dataclass(frozen=True)
class CommandTiming:
    """The CLI as a subprocess: wall from launch to exit, and its phases from the audit log."""

    wall: float
    cpu_with_children: float
    start_up: float
    phases: dict[str, float]
    per_record: float


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


def answers_per_record(run_dir: Path) -> float:
    """Answers over records in the run's checkpoint files (one record a line)."""
    answers = records = 0
    for path in run_dir.glob("checkpoint-*.jsonl"):
        for line in path.read_text("utf-8").splitlines():
            records += 1
            answers += len(json.loads(json.loads(line)["record"])["answers"])
    return answers / records if records else 0.0


def audit_times(run_dir: Path) -> dict[str, float]:
    """The wall-clock time of each event's first occurrence in the run's audit log."""
    first: dict[str, float] = {}
    for line in (run_dir / "audit.jsonl").read_text().splitlines():
        event = json.loads(line)
        first.setdefault(event["event"], float(event["ts"]))
    return first


def run_command(settings: Path, work: Path, state: Path) -> CommandTiming:
    """``python -m elspeth.cli run`` in a subprocess, as a user runs it: every run with the
    same state directory, as a user's runs share theirs (a first run makes it)."""
    output = work / "out"
    command = [
        *(sys.executable, "-m", "elspeth.cli", "run", "--settings", str(settings)),
        *("--output-dir", str(output), "--state-dir", str(state)),
        *("--log-level", "error"),
    ]
    cpu0 = children_cpu()
    launched, wall0 = time.time(), time.perf_counter()
    process = subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    wall = time.perf_counter() - wall0
    cpu = children_cpu() - cpu0  # the command and the processes it waited for (daemon, workers)
    if process.returncode != 0:
        raise SystemExit(f"the command failed ({process.returncode}): {process.stderr[-2000:]!r}")
    (run_dir,) = output.glob("2*")
    times = audit_times(run_dir)
    start = times["seal_verified"]
    phases = {
        "launch to run_started (imports, settings)": times["run_started"] - launched,
        "run_started to authority_ready (daemon)": times["authority_ready"] - times["run_started"],
        "authority_ready to first seal check (plan, load)": start - times["authority_ready"],
        "fan-out (first seal check to stage end)": times["llm_stage_done"] - start,
        "stage end to exit (sinks, manifest, stop)": launched + wall - times["llm_stage_done"],
    }
    return CommandTiming(wall, cpu, start - launched, phases, answers_per_record(run_dir))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_rss(scratch: Path) -> float:
    """Resident memory of a standalone worker after its ``ready`` (and a moment to settle)."""
    config = RuntimeConfig(log_dir=scratch / "logs", scratch_root=scratch / "scratch", pool_size=1)
    worker = WorkerProcess(config, SecurityLevel.OFFICIAL)
    try:
        time.sleep(0.3)  # after ready it imports its serving loop
        return rss_mib(worker.pgid)
    finally:
        worker.stop(polite=True)


def pyarrow_rss() -> float:
    """The floor: ``python -I -c "import pyarrow"``, measured once it is imported."""
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", "import sys, pyarrow; print(flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        return rss_mib(process.pid)
    finally:
        process.kill()
        process.wait()


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
        wall,
        cpu,
        fan_out_seconds(summary.run_dir),
        summary.experiments[0].answers,
        answers_per_record(summary.run_dir),
    )


def run_floor(
    base_url: str, rows: list[dict[str, str]], concurrency: int
) -> tuple[float, float, int]:
    return measure(lambda: bare_client(base_url, rows, concurrency))


def print_aims(
    rows: int,
    ideal: float,
    floor_wall: float,
    floor_cpu: float,
    pipelines: list[PipelineTiming],
    commands: list[CommandTiming],
    worker_mib: float,
    pyarrow_mib: float,
) -> None:
    """The rebuilt runner's four aims, each as a ratio to its floor from this run."""
    command_wall = statistics.median(c.wall for c in commands)
    start_up = statistics.median(c.start_up for c in commands)
    cpu = statistics.median(p.cpu for p in pipelines)
    per_record = statistics.median(
        [*(p.per_record for p in pipelines), *(c.per_record for c in commands)]
    )
    aims = [
        (
            "(a) whole command, efficiency vs floor",
            f"{command_wall:.3f} s vs floor {floor_wall:.3f} s (ideal {ideal:.3f} s)",
            f"{(ideal / command_wall) / (ideal / floor_wall):.2f}",
            "≥ 0.85",
            (ideal / command_wall) / (ideal / floor_wall) >= 0.85,
        ),
        (
            "(a) start-up: launch to first seal check",
            f"{start_up:.3f} s",
            "",
            "< 1 s",
            start_up < 1.0,
        ),
        (
            "(b) client CPU per request vs floor",
            f"{cpu / rows * 1000:.3f} ms vs {floor_cpu / rows * 1000:.3f} ms",
            f"{cpu / floor_cpu:.2f}",
            "≤ 1.3",
            cpu / floor_cpu <= 1.3,
        ),
        (
            "(c) answers per checkpoint record",
            f"{per_record:.1f}",
            "",
            "≥ 32",
            per_record >= 32,
        ),
        (
            "(d) worker RSS after ready vs `import pyarrow`",
            f"{worker_mib:.1f} MiB vs {pyarrow_mib:.1f} MiB",
            f"{worker_mib / pyarrow_mib:.2f}",
            "≤ 1.5",
            worker_mib / pyarrow_mib <= 1.5,
        ),
    ]
    print(f"\n<!-- load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} -->")
    print("| aim | measured | ratio | floor | met |")
    print("|---|---|---:|---:|---|")
    for name, measured, ratio, floor, met in aims:
        print(f"| {name} | {measured} | {ratio} | {floor} | {'yes' if met else 'no'} |")
    print("\n| whole command, phase (median) | seconds |")
    print("|---|---:|")
    for phase in commands[0].phases:
        print(f"| {phase} | {statistics.median(c.phases[phase] for c in commands):.3f} |")
    with_children = statistics.median(c.cpu_with_children for c in commands)
    print(
        f"| (CPU of the command with its daemon and workers, per request: "
        f"{with_children / rows * 1000:.3f} ms) | |"
    )


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
    commands: list[CommandTiming] = []
    worker_rsses: list[float] = []
    pyarrow_rsses: list[float] = []
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

        def command_once(label: str) -> CommandTiming:
            work = root / label
            work.mkdir()
            return run_command(settings, work, root / "command-state")

        run_floor(server.base_url, rows, args.concurrency)  # warm-up
        pipeline_once("warm-up")
        command_once("warm-up-command")
        for round_number in range(args.rounds):
            wall, cpu, ok = run_floor(server.base_url, rows, args.concurrency)
            if ok != args.rows:
                raise SystemExit(f"floor: {ok} of {args.rows} requests succeeded")
            floor_walls.append(wall)
            floor_cpus.append(cpu)
            pipelines.append(pipeline_once(f"round-{round_number}"))
            commands.append(command_once(f"command-{round_number}"))
            pyarrow_rsses.append(pyarrow_rss())
            rss_dir = root / f"rss-{round_number}"
            rss_dir.mkdir()
            worker_rsses.append(worker_rss(rss_dir))
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
    for name, path_wall, path_cpu in table:
        efficiency = ideal / path_wall
        cpu_text = "" if path_cpu is None else f"{path_cpu / args.rows * 1000:.3f}"
        ratio = efficiency / floor_eff
        print(f"| {name} | {path_wall:.3f} | {efficiency:.2f} | {ratio:.2f} | {cpu_text} |")
    print_aims(
        args.rows,
        ideal,
        floor_wall,
        statistics.median(floor_cpus),
        pipelines,
        commands,
        statistics.median(worker_rsses),
        statistics.median(pyarrow_rsses),
    )
    if profile is not None:
        print("\nProfiled pipeline run, by own time (cProfile, event-loop thread):\n")
        stats = pstats.Stats(profile)
        stats.sort_stats(pstats.SortKey.TIME).print_stats(25)
        stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(40)


if __name__ == "__main__":
    main()
