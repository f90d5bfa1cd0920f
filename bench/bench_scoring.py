"""Deterministic scorers: the built-in ``answer_scorer`` through a sandboxed worker vs in-process.

For each scorer, over the same sealed frame of short answers and references (generated from a
seed: exact copies, copies that differ in case, punctuation or articles, partial answers and wrong
answers), in alternating rounds after one untimed warm-up round on a small frame (imports such as
sacrebleu, regex compilation, memory pools on either side):

* (a) isolated worker: ``PluginRuntime.run("answer_scorer", ...)`` in standalone mode, as a suite
  runs a row plugin (view seal check, Arrow IPC out, the plugin in the worker, the three result
  columns back, digest and derive by the daemon);
* (b) in-process: the same plugin's ``run`` on the same rows through a plain proxy (the view's
  ``tolist``, ``row_scorer`` and ``score_cell`` per row, the three result columns) — the scorer's
  own cost, without worker, IPC or seals;
* (c) in-process with the proxy policy (``ProxyService``: seal check, digest, derive), as in
  ``bench_workers.py``, to split (a)'s extra time into seal work and the process boundary.

Both paths must produce the same columns. Reports worker / in-process per scorer (the aim is at
most 1.5x) and prints a markdown table for docs/performance.md.

    .venv/bin/python bench/bench_scoring.py [--rows 100000] [--repeats 3]
        [--scorers exact,token_f1,bleu,chrf] [--profile]
    .venv/bin/python bench/bench_scoring.py --scorers semantic --rows 5000   # the semantic extra

``--profile`` adds one cProfile run of (b) per scorer and prints its top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench_workers import InProcessProxy  # the same in-process proxy policy as that bench
from elspeth.orchestrator._arrow import frame_to_ipc
from elspeth.orchestrator._runtime._config import RuntimeConfig
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.orchestrator._runtime._proxies import ProxyService
from elspeth.plugins import FrameProxy, Plugin, PluginContext, View
from elspeth.plugins._registry import PluginRegistry
from elspeth.security import SecureDataFrame, SecurityLevel
from elspeth.sidecar import start_standalone_daemon

LEVEL = SecurityLevel.OFFICIAL
SEED = 20240617
WARM_UP_ROWS = 1000
SCORERS = ("exact", "token_f1", "bleu", "chrf")

_WORD_LINES = (
    "paris london river mountain capital city north south treaty signed year war king queen",
    "president election water oxygen carbon atom cell energy light speed sound planet moon sun",
    "star ocean island bridge tower museum painting novel author poem song language number",
    "prime square root million thousand hundred first second third largest smallest oldest",
    "newest famous ancient modern empire republic revolution battle army navy church temple",
)
_WORDS = [word for line in _WORD_LINES for word in line.split()]
_FILLERS = ("The answer is", "I think it is", "It is", "Answer:", "Probably", "That would be")


def make_rows(count: int, seed: int = SEED) -> pd.DataFrame:
    """Short references (1-8 words) and answers to them: a quarter exact copies, a quarter the
    same words with other case, punctuation, articles or a lead-in, a quarter partial (words
    dropped or added), a quarter wrong."""
    rng = random.Random(seed)
    references: list[str] = []
    answers: list[str] = []
    for _ in range(count):
        words = rng.choices(_WORDS, k=rng.randint(1, 8))
        if rng.random() < 0.3:
            words.insert(0, "the")
        reference = " ".join(words)
        if rng.random() < 0.5:
            reference = reference.capitalize()
        kind = rng.randrange(4)
        if kind == 0:
            answer = reference
        elif kind == 1:
            said = reference.upper() if rng.random() < 0.3 else reference
            answer = f"{rng.choice(_FILLERS)} {said}."
        elif kind == 2:
            kept = [w for w in words if rng.random() < 0.7] or words[:1]
            answer = " ".join(kept + rng.choices(_WORDS, k=rng.randint(0, 3)))
        else:
            answer = " ".join(rng.choices(_WORDS, k=rng.randint(1, 10))).capitalize() + "."
        references.append(reference)
        answers.append(answer)
    return pd.DataFrame({"id": range(count), "answer": answers, "reference": references})


PLUGIN_FOR = {"semantic": "semantic_similarity"}
"""Scorers that are plugins of their own; the rest are ``answer_scorer``'s."""


def plugin_for(scorer: str) -> str:
    return PLUGIN_FOR.get(scorer, "answer_scorer")


def parameters_for(scorer: str) -> dict[str, Any]:
    columns = {"answer": "answer", "reference": "reference", "output": "score"}
    return columns if scorer in PLUGIN_FOR else {"scorer": scorer, **columns}


class _PlainProxy:
    """The view as it is, the result kept: the plugin's own code with nothing around it."""

    def __init__(self, data: pd.DataFrame) -> None:
        self._data = data
        self.result: pd.DataFrame | None = None

    def get_view(self) -> View:
        return View(self._data, 1)

    def replace_data(self, data: pd.DataFrame, based_on_version: int) -> int:
        self.result = data
        return based_on_version + 1


def build(scorer: str) -> Plugin:
    return PluginRegistry(entry_points=False).build(plugin_for(scorer), parameters_for(scorer))


def run_plain(plugin: Plugin, data: pd.DataFrame) -> pd.DataFrame:
    proxy = _PlainProxy(data)
    plugin.run([proxy], PluginContext(plugin.name, "bench"))  # type: ignore[list-item]
    assert proxy.result is not None
    return proxy.result


def run_with_policy(plugin: Plugin, frame: SecureDataFrame) -> SecureDataFrame:
    service = ProxyService()
    step = service.open_step(
        worker_id="in-process",
        plugin=plugin.name,
        chunk_id="bench",
        clearance=plugin.clearance,
        frames=[frame],
        floor=LEVEL,
        output_level=LEVEL,
    )
    proxies: Sequence[FrameProxy] = [
        InProcessProxy(service, "in-process", h)  # type: ignore[misc]
        for h in step.handles
    ]
    plugin.run(proxies, PluginContext(plugin.name, "bench"))
    service.close_step(step, keep_outputs=True)
    return step.frames[0]


def run_worker(runtime: PluginRuntime, scorer: str, frame: SecureDataFrame) -> SecureDataFrame:
    result = runtime.run(
        plugin_for(scorer), parameters_for(scorer), [frame], chunk_id="bench", plan_level=LEVEL
    )
    (produced,) = result.produced
    return produced


def alternating(
    functions: Sequence[Callable[[], object]], repeats: int
) -> tuple[list[float], list[object]]:
    """Median wall time of each function over ``repeats`` rounds, one run of each per round."""
    times: list[list[float]] = [[] for _ in functions]
    results: list[object] = [None] * len(functions)
    for _ in range(repeats):
        for position, function in enumerate(functions):
            started = time.perf_counter()
            results[position] = function()
            times[position].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times], results


def timed(function: Callable[[], object], repeats: int) -> float:
    return alternating([function], repeats)[0][0]


def profile_top(function: Callable[[], object], limit: int = 8) -> str:
    profile = cProfile.Profile()
    profile.runcall(function)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(limit)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(lines[start:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scorers", default=",".join(SCORERS))
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    scorers = [name for name in options.scorers.split(",") if name]
    data = make_rows(options.rows)
    columns = [f"score{suffix}" for suffix in ("_value", "_outcome", "_explanation")]
    measured: dict[str, tuple[float, float, float]] = {}
    profiles: dict[str, str] = {}
    base = Path(tempfile.mkdtemp(prefix="elspeth-bench-"))
    with start_standalone_daemon(state_dir=base / "state") as daemon, daemon.connect() as client:
        frame = SecureDataFrame.create_from_datasource(data, LEVEL, client)
        small = SecureDataFrame.create_from_datasource(data.head(WARM_UP_ROWS), LEVEL, client)
        # 4 GiB, the semantic scorer's floor, for every worker: RLIMIT_AS costs nothing below it.
        config = RuntimeConfig(
            log_dir=base / "logs",
            scratch_root=base / "scratch",
            pool_size=1,
            memory_limit_bytes=4 * 1024**3,
        )
        with PluginRuntime(client, config) as runtime:
            runtime.pool(LEVEL).prestart()
            for scorer in scorers:
                plugin = build(scorer)
                runtime.describe(plugin_for(scorer), parameters_for(scorer))
                run_worker(runtime, scorer, small)  # warm-up: imports, pools
                run_plain(plugin, small.data)
                run_with_policy(plugin, small)
                (worker, plain, policy), (isolated, local, _) = alternating(
                    [
                        lambda s=scorer: run_worker(runtime, s, frame),  # type: ignore[misc]
                        lambda p=plugin: run_plain(p, frame.data),  # type: ignore[misc]
                        lambda p=plugin: run_with_policy(p, frame),  # type: ignore[misc]
                    ],
                    options.repeats,
                )
                assert isinstance(isolated, SecureDataFrame)
                assert isinstance(local, pd.DataFrame)
                pd.testing.assert_frame_equal(
                    isolated.data[columns], local[columns], check_dtype=False
                )
                measured[scorer] = (plain, policy, worker)
                if options.profile:
                    profiles[scorer] = profile_top(lambda p=plugin: run_plain(p, frame.data))  # type: ignore[misc]
            outcomes = local["score_outcome"].value_counts().to_dict()
        verify = timed(frame.verify_seal, options.repeats)
        view_mib = len(frame_to_ipc(frame.data)) / 2**20
        back_mib = len(frame_to_ipc(local[columns])) / 2**20

    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, scorers "
        f"over {options.rows:,} rows (median of {options.repeats} alternating rounds); view "
        f"{view_mib:.1f} MiB of Arrow IPC, result columns {back_mib:.1f} MiB; last scorer's "
        f"outcomes {outcomes}; seal check of the view alone {verify:.3f} s -->"
    )
    print(
        "| scorer | in-process (s) | µs per row | in-process + seal policy (s) "
        "| isolated worker (s) | worker / in-process (aim <= 1.5x) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for scorer, (plain, policy, worker) in measured.items():
        per_row = plain / options.rows * 1e6
        print(
            f"| {scorer} | {plain:.3f} | {per_row:.1f} | {policy:.3f} | {worker:.3f} "
            f"| {worker / plain:.2f}x |"
        )
    print()
    for scorer, (plain, policy, worker) in measured.items():
        print(
            f"ratio {scorer}: worker/in-process {worker / plain:.2f}x "
            f"(seal policy {policy - plain:+.3f} s, process boundary {worker - policy:+.3f} s)"
        )
    for scorer, top in profiles.items():
        print(f"\nprofile of the in-process {scorer} path (top functions by own time):\n{top}")


if __name__ == "__main__":
    main()
