"""Suite-level outputs against floors that do the same unavoidable work, measured in one run.

A suite report over real sealed frames (minted by a private standalone seal authority) is written
by each output, and each output is timed against a floor:

* the HTML, Markdown and Excel reports against writing the same frames with the CSV sink (every
  experiment's row chunks as one file, every aggregate and comparison as one file each): the
  same release checks (clearance, digest, daemon round trip per frame), the same private,
  atomic, fsync'd files;
* the signed bundle (Ed25519) against the same frames as zstd Parquet in a plain tar.gz made by
  :mod:`tarfile` at the bundle's gzip level, written and fsync'd (no seal checks, no record
  files, no manifest, no signature);
* ``verify_bundle`` against reading the same .tar.gz with :mod:`tarfile` and SHA-256 over every
  member (no manifest or signature check).

Every path runs once per round, rounds alternate after one untimed warm-up round, and each path's
median is kept, so load from elsewhere on the shared machine hits every path alike. Parts of the
reports (the release check alone, the report's tables) and yardsticks (XlsxWriter alone over the
same rows, listing installed packages for the bundle) are timed in the same rounds; the HTML
charts are timed inside the HTML report's own runs. ``--profile`` adds one cProfile run of each
compared path and prints where its time goes. Prints markdown tables for docs/performance.md.

    .venv/bin/python bench/bench_reports.py [--experiments 3] [--rows 10000] [--criteria 2]
        [--chunks 2] [--repeats 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import io
import itertools
import os
import platform
import pstats
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

# This directory, for the shared timing loop.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_workers import alternating
from elspeth.bundle import BundleConfig, BundleSink, generate_signing_key, verify_bundle
from elspeth.bundle._archive import _COMPRESSION_LEVEL as BUNDLE_GZIP_LEVEL
from elspeth.bundle._contents import PARQUET_COMPRESSION, installed_packages
from elspeth.outcome import RunStatus
from elspeth.reports import (
    ExcelReport,
    ExcelReportConfig,
    HtmlReport,
    HtmlReportConfig,
    MarkdownReport,
    MarkdownReportConfig,
    _html,
)
from elspeth.reports._content import report_content
from elspeth.security import (
    ComponentSpec,
    PipelineSpec,
    SealAuthority,
    SecureDataFrame,
    SecurityLevel,
    build_clearance_plan,
)
from elspeth.sidecar import start_standalone_daemon
from elspeth.sinks import (
    ComparisonReport,
    CsvSinkConfig,
    ExperimentReport,
    PluginRecord,
    Sink,
    SuiteReport,
)

LEVEL = SecurityLevel.OFFICIAL
CRITERIA = ("urgency", "clarity", "tone", "accuracy")
ERROR_EVERY = 97
"""Every this-many-th row's answer failed, as a few do in a real run."""
SERVICE_AREAS = np.array(["roads", "housing", "waste", "parks", "libraries"])


# --- the report: shaped like the suite runner's, over frames minted by the real authority -----


def result_rows(experiment: int, rows: int, criteria: tuple[str, ...]) -> pd.DataFrame:
    """Data columns, ``_row``, per-criterion LLM columns and extracted scores."""
    generator = np.random.default_rng(100 + experiment)
    index = np.arange(rows)
    failed = index % ERROR_EVERY == 3
    data: dict[str, Any] = {
        "request_id": pd.Series([f"REQ-{i:06d}" for i in index], dtype="str"),
        "service_area": pd.Series(SERVICE_AREAS[index % len(SERVICE_AREAS)], dtype="str"),
        "message": pd.Series(
            [f"Request {i}: please look at item {i % 311} near stop {i % 17}." for i in index],
            dtype="str",
        ),
        "_row": index,
    }
    for criterion in criteria:
        scores = np.clip(generator.normal(3 + 0.4 * experiment, 1.0, rows).round(), 1, 5)
        data[f"{criterion}_response"] = pd.Series(
            [
                None if bad else f'{{"score": {int(s)}}}'
                for s, bad in zip(scores, failed, strict=True)
            ],
            dtype="str",
        )
        data[f"{criterion}_outcome"] = pd.Series(np.where(failed, "error", "ok"), dtype="str")
        tokens = pd.array(40 + index % 7, dtype="Int64")
        tokens[failed] = pd.NA
        data[f"{criterion}_prompt_tokens"] = tokens
        completion = pd.array(np.full(rows, 12), dtype="Int64")
        completion[failed] = pd.NA
        data[f"{criterion}_completion_tokens"] = completion
        data[f"{criterion}_cost"] = np.where(failed, 0.0, 0.0001)
        data[f"{criterion}_latency_ms"] = generator.gamma(4.0, 30.0, rows).round(1)
        data[f"{criterion}_score"] = np.where(failed, np.nan, scores)
    return pd.DataFrame(data)


def score_summary(results: pd.DataFrame, criteria: tuple[str, ...]) -> pd.DataFrame:
    """A ``score_summary``-shaped aggregate."""
    rows = []
    for criterion in criteria:
        scores = results[f"{criterion}_score"].dropna()
        mean = float(scores.mean())
        rows.append(
            {
                "criterion": criterion,
                "rows": len(results),
                "scored": len(scores),
                "errors": int((results[f"{criterion}_outcome"] == "error").sum()),
                "mean": mean,
                "ci_low": mean - 0.05,
                "ci_high": mean + 0.05,
                "pass_rate": float((scores >= 3).mean()),
            }
        )
    return pd.DataFrame(rows)


def score_comparison(
    baseline: pd.DataFrame, variant: pd.DataFrame, criteria: tuple[str, ...]
) -> pd.DataFrame:
    """A ``score_comparison``-shaped frame."""
    rows = []
    for criterion in criteria:
        difference = float(
            variant[f"{criterion}_score"].mean() - baseline[f"{criterion}_score"].mean()
        )
        rows.append(
            {
                "criterion": criterion,
                "baseline_mean": float(baseline[f"{criterion}_score"].mean()),
                "variant_mean": float(variant[f"{criterion}_score"].mean()),
                "difference": difference,
                "ci_low": difference - 0.05,
                "ci_high": difference + 0.05,
                "test": "mann_whitney_u",
                "p_value": 0.001,
                "cliffs_delta": 0.2,
                "verdict": f"{criterion}: variant higher by {difference:.2f}",
            }
        )
    return pd.DataFrame(rows)


def run_summary(name: str, results: pd.DataFrame, criteria: tuple[str, ...]) -> dict[str, Any]:
    answers = sum(int((results[f"{c}_outcome"] == "ok").sum()) for c in criteria)
    errors = len(results) * len(criteria) - answers
    return {
        "name": name,
        "rows": len(results),
        "answers": answers,
        "errors": errors,
        "cached": 0,
        "resumed": 0,
        "retries": 0,
        "cost": f"{answers * 0.0001:.4f}",
        "prompt_tokens": 43 * answers,
        "completion_tokens": 12 * answers,
        "partial": False,
        "stop_reason": None,
        "early_stopped": False,
    }


def make_report(
    authority: SealAuthority, experiments: int, rows: int, criteria: tuple[str, ...], chunks: int
) -> SuiteReport:
    """A baseline and ``experiments - 1`` variants, each as ``chunks`` sealed row frames and a
    derived aggregate, and a derived comparison per variant."""
    names = ["baseline", *(f"variant_{i}" for i in range(1, experiments))]
    reports = []
    for position, name in enumerate(names):
        data = result_rows(position, rows, criteria)
        bounds = np.linspace(0, rows, chunks + 1).astype(int)
        frames = tuple(
            SecureDataFrame.create_from_datasource(
                data.iloc[start:end].reset_index(drop=True), LEVEL, authority
            )
            for start, end in itertools.pairwise(bounds)
        )
        aggregate = SecureDataFrame.derive_from(frames, score_summary(data, criteria))
        reports.append(
            ExperimentReport(
                name=name,
                baseline=position == 0,
                model="mock",
                prompt_pack="triage",
                criteria=criteria,
                summary=run_summary(name, data, criteria),
                results=frames,
                aggregates={"score_summary": aggregate},
            )
        )
    baseline = reports[0]
    comparisons = tuple(
        ComparisonReport(
            comparison="versus_baseline",
            baseline=baseline.name,
            variant=variant.name,
            frame=SecureDataFrame.derive_from(
                [*baseline.results, *variant.results],
                score_comparison(baseline.results_data(), variant.results_data(), criteria),
            ),
        )
        for variant in reports[1:]
    )
    components = [ComponentSpec("datasource", "datasource", LEVEL, classification=LEVEL)]
    components.extend(
        ComponentSpec(f"{name}/llm", "llm", LEVEL, inputs=("datasource",)) for name in names
    )
    return SuiteReport(
        suite="bench-reports",
        description="Rate how urgent each request is.",
        run_id="20260101T000000Z-bench",
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC).isoformat(),
        experiments=tuple(reports),
        comparisons=comparisons,
        plan=build_clearance_plan(PipelineSpec(tuple(components))),
        settings={"suite": {"name": "bench-reports"}},
        plugins=(
            PluginRecord("urgency_score", "score_extractor", "row_plugin", "bench", {}),
            PluginRecord("score_summary", "score_summary", "aggregator", "bench", {}),
        ),
        artifacts=(),
        status=RunStatus.COMPLETE,
    )


# --- the floors --------------------------------------------------------------------------------


def data_groups(report: SuiteReport) -> Iterator[tuple[str, tuple[SecureDataFrame, ...]]]:
    """Each output file's name (without suffix) and the frames it holds, as the bundle groups
    them."""
    for experiment in report.experiments:
        yield f"results/{experiment.name}", experiment.results
        for aggregator, frame in experiment.aggregates.items():
            yield f"aggregates/{experiment.name}/{aggregator}", (frame,)
    for comparison in report.comparisons:
        yield f"comparisons/{comparison.comparison}/{comparison.variant}", (comparison.frame,)


def write_csv_files(report: SuiteReport, directory: Path) -> None:
    """The report floor: every frame through the CSV sink."""
    sink = Sink(CsvSinkConfig(clearance=LEVEL))
    for name, frames in data_groups(report):
        sink.write_chunks(frames, directory / f"{name.replace('/', '__')}.csv")


def write_plain_archive(report: SuiteReport, destination: Path) -> None:
    """The bundle floor: the same frames as Parquet in a tar.gz, fsync'd."""
    with (
        destination.open("wb") as handle,
        tarfile.open(
            fileobj=handle, mode="w:gz", compresslevel=BUNDLE_GZIP_LEVEL, format=tarfile.PAX_FORMAT
        ) as archive,
    ):
        for name, frames in data_groups(report):
            data = pd.concat([frame.data for frame in frames], ignore_index=True)
            buffer = io.BytesIO()
            pq.write_table(
                pa.Table.from_pandas(data, preserve_index=False),
                buffer,
                compression=PARQUET_COMPRESSION,
            )
            info = tarfile.TarInfo(f"{name}.parquet")
            info.size = buffer.tell()
            buffer.seek(0)
            archive.addfile(info, buffer)
        archive.close()
        handle.flush()
        os.fsync(handle.fileno())


def hash_archive(path: Path) -> dict[str, str]:
    """The verification floor: SHA-256 of every member of a tar.gz, read once as a stream."""
    digests = {}
    with tarfile.open(path, mode="r|gz") as archive:
        for member in archive:
            handle = archive.extractfile(member)
            if handle is None:
                continue
            hasher = hashlib.sha256()
            while block := handle.read(1 << 20):
                hasher.update(block)
            digests[member.name] = hasher.hexdigest()
    return digests


def write_plain_workbook(report: SuiteReport) -> bytes:
    """Not a floor, a yardstick for the Excel report: XlsxWriter alone writing every result row
    (missing cells blank), one sheet per experiment, in memory, with no per-cell policy."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    for experiment in report.experiments:
        worksheet = workbook.add_worksheet(experiment.name)
        data = experiment.results_data()
        worksheet.write_row(0, 0, [str(column) for column in data.columns])
        cells = data.astype(object).where(data.notna(), None)
        for row, values in enumerate(cells.itertuples(index=False, name=None), start=1):
            worksheet.write_row(row, 0, values)
    workbook.close()
    return buffer.getvalue()


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Stopwatch:
    """Stands in for a function and records how long each call took."""

    function: Callable[..., Any]
    seconds: list[float] = field(default_factory=list)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds.append(time.perf_counter() - started)


@dataclass(frozen=True)
class Case:
    """One timed path: ``floor`` names the path it is compared with; ``output`` is what it wrote."""

    label: str
    action: Callable[[], object]
    floor: str | None = None
    output: Path | None = None


def output_bytes(path: Path) -> int:
    """A file's size, or the total size of the files in a directory."""
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def profile_summary(label: str, action: Callable[[], object], lines: int) -> None:
    """One profiled run of ``action``: the functions that spent the most time themselves."""
    profile = cProfile.Profile()
    profile.runcall(action)
    output = io.StringIO()
    stats = pstats.Stats(profile, stream=output)
    stats.sort_stats("tottime").print_stats(lines)
    print(f"\n### {label}: one profiled run ({stats.total_tt:.3f} s)\n")
    print("```")
    text = output.getvalue()
    print(text[text.index("ncalls") :].rstrip())
    print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=3, help="baseline + variants (>= 2)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows per experiment")
    parser.add_argument("--criteria", type=int, default=2, choices=range(1, len(CRITERIA) + 1))
    parser.add_argument("--chunks", type=int, default=2, help="sealed row frames per experiment")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    if options.experiments < 2 or options.rows < options.chunks or options.chunks < 1:
        parser.error("need --experiments >= 2 and --rows >= --chunks >= 1")
    criteria = CRITERIA[: options.criteria]

    with tempfile.TemporaryDirectory(prefix="elspeth-bench-reports-") as directory:
        measure(options, criteria, Path(directory))


def measure(options: argparse.Namespace, criteria: tuple[str, ...], base: Path) -> None:
    out = base / "out"
    private_key, public_key = base / "signing.pem", base / "signing.pub.pem"
    generate_signing_key(private_key, public_key)
    bundle_path = out / "bundle.tar.gz"
    csv_floor, tar_floor, hash_floor = (
        "CSV sink, every frame",
        "plain tar.gz of Parquet",
        "tar + SHA-256 of every member",
    )
    with start_standalone_daemon(state_dir=base / "state") as daemon, daemon.connect() as client:
        report = make_report(client, options.experiments, options.rows, criteria, options.chunks)
        html = HtmlReport(HtmlReportConfig(clearance=LEVEL))
        markdown = MarkdownReport(MarkdownReportConfig(clearance=LEVEL))
        excel = ExcelReport(ExcelReportConfig(clearance=LEVEL))
        bundle = BundleSink(
            BundleConfig(
                clearance=LEVEL,
                signing={"method": "ed25519", "private_key_path": private_key},
            )
        )
        content = report_content(report, LEVEL)
        cases = [
            Case(csv_floor, lambda: write_csv_files(report, out / "csv"), output=out / "csv"),
            Case(
                "HTML report",
                lambda: html.write(report, out / "report.html"),
                csv_floor,
                out / "report.html",
            ),
            Case(
                "Markdown report",
                lambda: markdown.write(report, out / "report.md"),
                csv_floor,
                out / "report.md",
            ),
            Case(
                "Excel report",
                lambda: excel.write(report, out / "report.xlsx"),
                csv_floor,
                out / "report.xlsx",
            ),
            Case(
                tar_floor,
                lambda: write_plain_archive(report, out / "plain.tar.gz"),
                output=out / "plain.tar.gz",
            ),
            Case(
                "signed bundle (Ed25519)",
                lambda: bundle.write(report, bundle_path),
                tar_floor,
                bundle_path,
            ),
            Case(hash_floor, lambda: hash_archive(bundle_path)),
            Case(
                "verify_bundle (pinned key)",
                lambda: verify_bundle(bundle_path, public_key=public_key),
                hash_floor,
            ),
            Case("release check alone (every frame)", lambda: html.release(report)),
            Case("report tables alone", lambda: report_content(report, LEVEL)),
            Case("plain XlsxWriter, same result rows", lambda: write_plain_workbook(report)),
            Case("installed_packages() alone (packages.json)", installed_packages),
        ]
        # The HTML report looks its chart function up at each call, so a stopwatch in its
        # place times the charts of every run the report makes.
        chart_stopwatch = Stopwatch(_html.report_charts)
        _html.report_charts = chart_stopwatch
        seconds, _ = alternating([case.action for case in cases], options.repeats)
        charts = statistics.median(chart_stopwatch.seconds[1:])  # after the warm-up run
        if options.profile:
            for case in cases:
                if case.floor is not None:
                    profile_summary(case.label, case.action, 12)
    timing = {case.label: s for case, s in zip(cases, seconds, strict=True)}
    with tarfile.open(bundle_path, mode="r|gz") as archive:
        bundle_members = sum(1 for _ in archive)

    print(
        f"\n<!-- {platform.python_implementation()} {platform.python_version()}, "
        f"pandas {pd.__version__}, pyarrow {pa.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; {options.experiments} experiments x "
        f"{options.rows:,} rows in {options.chunks} sealed chunks, {len(criteria)} criteria "
        f"({content.results['baseline'].shape[1]} columns), bundle of {bundle_members} members; "
        f"median of {options.repeats} alternating rounds -->"
    )
    print("| benchmark | measured (s) | floor (s) | ratio |")
    print("|---|---:|---:|---:|")
    for case in cases:
        if case.floor is not None:
            measured, floor = timing[case.label], timing[case.floor]
            print(
                f"| {case.label} vs {case.floor} | {measured:.3f} | {floor:.3f} "
                f"| {measured / floor:.2f}x |"
            )
    print("\n| path | seconds | output |")
    print("|---|---:|---:|")
    for case in cases:
        size = "" if case.output is None else f"{output_bytes(case.output) / 1024:,.0f} KiB"
        print(f"| {case.label} | {timing[case.label]:.3f} | {size} |")
    page = timing["HTML report"]
    print(
        f"\nHTML charts, timed inside the HTML report's runs: {charts:.3f} s of its {page:.3f} s "
        f"({charts / page:.0%})."
    )


if __name__ == "__main__":
    main()
