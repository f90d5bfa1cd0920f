"""LLM fan-out: the LLM stage against a bare aiohttp client, same requests, same run.

A loopback OpenAI-compatible server with a fixed latency runs in a separate process (so its CPU is
not on the client's event loop). Against it, in alternating rounds: (a) a bare aiohttp client with
``concurrency`` workers POSTing the same chat requests the stage would send and parsing the JSON
answer (the floor); (b) ``LLMStage`` with the ``openai`` client, no cache, rendering one sandboxed
template per row. Reports wall time, efficiency against the ideal ``rows x latency / concurrency``
and client CPU per request; prints a markdown table for docs/performance.md.

    .venv/bin/python bench/bench_llm_fanout.py [--rows 2000] [--concurrency 50] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.openai_server import serve_in_subprocess

from elspeth.llm import LLMStage, OpenAIClient, Outcome, PromptPack, RetryPolicy, RowResult
from elspeth.security import SecurityLevel

MODEL = "bench-model"
TEMPLATE = "Score the answer to ticket {{ ticket }}: {{ text }}"


def make_rows(count: int) -> list[dict[str, str]]:
    return [
        {"ticket": f"T-{i:05d}", "text": f"Answer number {i} to the question."}
        for i in range(count)
    ]


async def bare_client(base_url: str, rows: list[dict[str, str]], concurrency: int) -> int:
    """The floor: the same requests with nothing but aiohttp and json."""
    url = f"{base_url}/chat/completions"
    ok = 0
    pending = iter(rows)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok
            for row in pending:
                content = f"Score the answer to ticket {row['ticket']}: {row['text']}"
                body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
                async with session.post(
                    url,
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                ) as response:
                    answer = json.loads(await response.read())
                ok += bool(answer["choices"][0]["message"]["content"]) and response.status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


async def llm_stage(base_url: str, rows: list[dict[str, str]], concurrency: int) -> int:
    client = OpenAIClient(base_url=base_url, model=MODEL, timeout=30)
    stage = LLMStage(
        client,
        PromptPack({"score": TEMPLATE}),
        concurrency=concurrency,
        retry_policy=RetryPolicy(max_retries=0),
    )
    ok = 0

    def count(result: RowResult) -> None:  # streamed, as the suite runner consumes results
        nonlocal ok
        ok += result.outcome is Outcome.OK

    try:
        await stage.run(rows, level=SecurityLevel.OFFICIAL, on_result=count)
    finally:
        await client.aclose()
    return ok


def measure(action: Callable[[], Coroutine[Any, Any, int]]) -> tuple[float, float, int]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    ok: int = asyncio.run(action())
    return time.perf_counter() - wall0, time.process_time() - cpu0, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = make_rows(args.rows)
    ideal = args.rows * args.latency / args.concurrency
    cases: dict[str, Callable[[str], Callable[[], Coroutine[Any, Any, int]]]] = {
        "bare aiohttp client (floor)": lambda url: lambda: bare_client(url, rows, args.concurrency),
        "LLMStage, openai client, no cache": lambda url: (
            lambda: llm_stage(url, rows, args.concurrency)
        ),
    }
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    with serve_in_subprocess(args.latency) as server:
        for case in cases.values():  # warm-up: imports, connection setup paths
            measure(case(server.base_url))
        for _ in range(args.rounds):
            for name, case in cases.items():
                wall, cpu, ok = measure(case(server.base_url))
                if ok != args.rows:
                    raise SystemExit(f"{name}: {ok} of {args.rows} requests succeeded")
                walls[name].append(wall)
                cpus[name].append(cpu)
    floor_name = next(iter(cases))
    floor_eff = ideal / statistics.median(walls[floor_name])
    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, {args.rows} requests, concurrency {args.concurrency}, "
        f"latency {args.latency * 1000:g} ms, median of {args.rounds} rounds; server "
        f"saw {server.stats.get('request_count')} requests, at most "
        f"{server.stats.get('max_concurrent')} at once -->"
    )
    print("| client | wall (s) | efficiency vs ideal | vs floor | CPU per request (ms) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| ideal (rows x latency / concurrency) | {ideal:.3f} | 1.00 | | |")
    for name in cases:
        wall = statistics.median(walls[name])
        efficiency = ideal / wall
        cpu_ms = statistics.median(cpus[name]) / args.rows * 1000
        print(
            f"| {name} | {wall:.3f} | {efficiency:.2f} | {efficiency / floor_eff:.2f} | "
            f"{cpu_ms:.3f} |"
        )


if __name__ == "__main__":
    main()
