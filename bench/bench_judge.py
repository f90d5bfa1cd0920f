"""Judge fan-out: the suite's model-graded judge against a bare client, same requests, same run.

A loopback OpenAI-compatible server with a fixed latency runs in its own process (its CPU stays
off the client's event loop), answering every request with a grade (``...\\nGRADE: CORRECT``,
``PARTIAL`` or ``INCORRECT``, picked by a hash of the prompt). Against it, in alternating rounds
after one untimed warm-up each, ``rows`` answers are graded:

* the floor: the same ``OpenAIClient`` from ``elspeth.llm`` sending the judge's very requests
  (rendered beforehand by the judge's own prompt pack) with ``asyncio.gather`` bounded by a
  semaphore of ``concurrency``, keeping each reply's text;
* the judge's stage: ``LLMStage`` with the judge's ``PromptPack`` (``judge_pack``), the
  experiment's concurrency and retries, no cache, ``GradeScale.read`` on each reply as it arrives;
* the judge: ``JudgeRun.grade`` itself (``elspeth.suite._judge``) on one sealed chunk, built as the
  suite runner builds it from a loaded suite (a mock answerer, the judge at the server): the
  chunk's seal check, the rubric contexts, the stage above, a ``judge_result`` audit event per row
  (to a real ``AuditLog``), the error tally, and the eight grade columns derived by the daemon.

Efficiency = floor wall / judge wall (the aim is at least 0.9). Prints a markdown table for
docs/performance.md.

    .venv/bin/python bench/bench_judge.py [--rows 2000] [--concurrency 16] [--latency 0.02]
        [--rounds 3] [--profile]

``--profile`` adds one cProfile run of ``JudgeRun.grade`` (the event loop runs on the calling
thread) and prints its top functions by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import csv
import io
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.openai_server import serve_in_subprocess

from elspeth.config import load_suite
from elspeth.llm import ChatRequest, LLMStage, OpenAIClient, Outcome, RetryPolicy, RowResult
from elspeth.security import SecureDataFrame, SecurityLevel
from elspeth.sidecar import start_standalone_daemon
from elspeth.suite._audit import AuditLog
from elspeth.suite._judge import JudgeRun
from elspeth.suite._outcome import ErrorTally
from elspeth.suite._plan import JudgeStep
from elspeth.suite._progress import LogProgress
from elspeth.suite._setup import ROW_COLUMN
from elspeth.suite._validate import judge_pack

LEVEL = SecurityLevel.OFFICIAL
MODEL = "bench-judge"
JUDGE = "grader"
ANSWER = "answer_response"
RUBRIC = (
    "Grade the answer to question {{ id }}: {{ question }}\n"
    "Reference: {{ reference }}\nAnswer: {{ answer }}\n"
    "Explain briefly, then end with GRADE: CORRECT, PARTIAL or INCORRECT."
)
GRADES = ("CORRECT", "PARTIAL", "INCORRECT")


def make_rows(count: int) -> pd.DataFrame:
    """A chunk as the judge receives it: the run's row number, the data and the model's answer."""
    return pd.DataFrame(
        {
            ROW_COLUMN: range(count),
            "id": [f"Q{i:05d}" for i in range(count)],
            "question": [f"What is {i} plus one?" for i in range(count)],
            "expected": [str(i + 1) for i in range(count)],
            ANSWER: [f"It is {i + 1 if i % 4 else i}, one more than {i}." for i in range(count)],
        }
    )


def write_suite(directory: Path, base_url: str, data: pd.DataFrame, concurrency: int) -> Path:
    """A suite whose answers come from a mock and whose judge is at the loopback server."""
    with (directory / "data.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "expected"])
        writer.writerows(data[["id", "question", "expected"]].itertuples(index=False))
    settings: dict[str, Any] = {
        "suite": {"name": "bench-judge"},
        "datasource": {
            "type": "csv",
            "path": "data.csv",
            "classification": "OFFICIAL",
            "clearance": "OFFICIAL",
            "columns": {"id": "string", "question": "string", "expected": "string"},
            "target": "expected",
        },
        "models": {
            "answerer": {"type": "mock", "clearance": "OFFICIAL", "replies": ["It is 1."]},
            "judge": {
                "type": "openai",
                "clearance": "OFFICIAL",
                "base_url": base_url,
                "model": MODEL,
                "timeout": 30,
            },
        },
        "prompt_packs": {"qa": {"answer": "Answer {{ id }}: {{ question }}"}},
        "judges": {JUDGE: {"model": "judge", "rubric": RUBRIC}},
        "sinks": {"results": {"type": "csv", "clearance": "OFFICIAL"}},
        "defaults": {
            "model": "answerer",
            "prompt_pack": "qa",
            "judges": [JUDGE],
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


class Bench:
    """The three paths over one loaded suite and one sealed chunk."""

    def __init__(self, settings: Path, frame: SecureDataFrame, base_url: str, work: Path) -> None:
        self.suite = load_suite(settings)
        self.experiment = self.suite.experiments[0]
        self.frame = frame
        self.base_url = base_url
        self.work = work
        self.concurrency = self.experiment.concurrency
        self.step = JudgeStep(
            component=f"{self.experiment.name}/judge:{JUDGE}",
            incoming=LEVEL,
            produces=LEVEL,
            judge=JUDGE,
            settings=self.suite.settings.judges[JUDGE],
        )
        self.pack = judge_pack(self.suite, JUDGE)
        self.scale = self.step.settings.grade
        # The judge's contexts, as JudgeRun._context builds them, and their rendered requests.
        records = frame.data.to_dict(orient="records")
        self.contexts = [
            {
                **record,
                "answer": record[ANSWER],
                "reference": record["expected"],
                "references": {"expected": record["expected"]},
            }
            for record in records
        ]
        (criterion,) = self.pack.criteria
        self.requests = [ChatRequest(self.pack.render(criterion, c)) for c in self.contexts]
        self.rounds = 0

    def client(self) -> OpenAIClient:
        return OpenAIClient(base_url=self.base_url, model=MODEL, timeout=30)

    def bare(self) -> int:
        """The floor: the same client and requests, ``asyncio.gather`` under a semaphore."""

        async def main() -> int:
            client = self.client()
            await client.open(self.concurrency)
            gate = asyncio.Semaphore(self.concurrency)

            async def one(request: ChatRequest) -> str:
                async with gate:
                    return (await client.complete(request)).text

            try:
                texts = await asyncio.gather(*(one(r) for r in self.requests))
            finally:
                await client.aclose()
            return sum(bool(text) for text in texts)

        return asyncio.run(main())

    def stage(self) -> int:
        """The judge's stage alone: its pack and settings, each reply's grade read."""
        stage = LLMStage(
            self.client(),
            self.pack,
            concurrency=self.concurrency,
            retry_policy=RetryPolicy(max_retries=self.experiment.max_retries),
        )
        graded = 0

        def read(result: RowResult) -> None:
            nonlocal graded
            if result.outcome is Outcome.OK and result.text is not None:
                graded += self.scale.read(result.text).outcome != "error"

        stage.run_sync(self.contexts, level=LEVEL, on_result=read)
        return graded

    def judge(self) -> int:
        """``JudgeRun.grade`` on the chunk, as the suite runner calls it."""
        self.rounds += 1
        audit = AuditLog(self.work / f"audit-{self.rounds}.jsonl", f"bench-{self.rounds}")
        try:
            run = JudgeRun(
                self.step,
                suite=self.suite,
                experiment=self.experiment,
                audit=audit,
                cache_dir=self.work / "cache",
                tally=ErrorTally(),
                progress=LogProgress(every=3600),
                rows=self.frame.shape[0],
            )
            graded = run.grade(self.frame, 0)
            run.finish()
        finally:
            audit.close()
        outcomes = graded.data[f"{JUDGE}_outcome"]
        return int(outcomes.isin(["pass", "fail"]).sum())


def measure(action: Callable[[], int]) -> tuple[float, float, int]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    ok = action()
    return time.perf_counter() - wall0, time.process_time() - cpu0, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    ideal = args.rows * args.latency / args.concurrency
    data = make_rows(args.rows)
    work = Path(tempfile.mkdtemp(prefix="elspeth-bench-judge-"))
    with (
        serve_in_subprocess(args.latency, 900.0, grades=GRADES) as server,
        start_standalone_daemon(state_dir=work / "state") as daemon,
        daemon.connect() as client,
    ):
        settings = write_suite(work, server.base_url, data, args.concurrency)
        frame = SecureDataFrame.create_from_datasource(data, LEVEL, client)
        bench = Bench(settings, frame, server.base_url, work)
        cases: dict[str, Callable[[], int]] = {
            "bare OpenAIClient, gather + semaphore (floor)": bench.bare,
            "judge's LLMStage + GradeScale.read": bench.stage,
            "JudgeRun.grade (seal check, stage, audit, columns, derive)": bench.judge,
        }
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for case in cases.values():  # warm-up: imports, template compilation, connections
            measure(case)
        for _ in range(args.rounds):
            for name, case in cases.items():
                wall, cpu, ok = measure(case)
                if ok != args.rows:
                    raise SystemExit(f"{name}: {ok} of {args.rows} rows graded")
                walls[name].append(wall)
                cpus[name].append(cpu)
        profile = None
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(bench.judge)
    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, {args.rows} "
        f"rows, concurrency {args.concurrency}, latency {args.latency * 1000:g} ms, median of "
        f"{args.rounds} alternating rounds; server saw {server.stats.get('request_count')} "
        f"requests, at most {server.stats.get('max_concurrent')} at once -->"
    )
    print("| path | wall (s) | efficiency vs ideal | floor / path | CPU per row (ms) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| ideal (rows x latency / concurrency) | {ideal:.3f} | 1.00 | | |")
    floor = statistics.median(walls[next(iter(cases))])
    for name in cases:
        wall = statistics.median(walls[name])
        cpu_ms = statistics.median(cpus[name]) / args.rows * 1000
        print(f"| {name} | {wall:.3f} | {ideal / wall:.2f} | {floor / wall:.2f} | {cpu_ms:.3f} |")
    judge_wall = statistics.median(walls[list(cases)[-1]])
    print(f"\njudge efficiency (bare / judge): {floor / judge_wall:.2f}x (aim: >= 0.9x)")
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(f"\nprofile of one JudgeRun.grade (top functions by own time):\n{out.getvalue()}")


if __name__ == "__main__":
    main()
