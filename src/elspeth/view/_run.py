"""A finished (or stopped) run's outputs as the viewer reads them: verified, then side by side.

Nothing here writes. Every results file the viewer serves is checked against the digest the
run's manifest recorded before a byte of it is parsed, so a file changed after the run is
refused, not shown; and the run's classification comes from the manifest, never from a file.
"""

from __future__ import annotations

import contextlib
import io
import json
import mmap
import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from elspeth.datasources._marking import CSV_BANNER_PREFIX, JSONL_HEADER_KEY
from elspeth.security import LevelParseError, SecurityLevel
from elspeth.view._errors import ViewError

ROW: Final = "_row"
REPEAT: Final = "_repeat"
RESULTS_INFIX: Final = "__results__"
COMPARE_PREFIX: Final = "compare"
#: Results formats the viewer reads, the best first: Parquet keeps the column types.
READABLE: Final = (".parquet", ".jsonl", ".csv")
#: Audit events a row's drill-down shows.
ROW_EVENTS: Final = frozenset({"llm_result", "judge_result"})


@dataclass(frozen=True)
class Comparison:
    """One comparison instance's results for one variant against the baseline."""

    name: str
    variant: str
    table: pa.Table


@dataclass(frozen=True)
class RunOutputs:
    """One run: its facts, its experiments' results tables, and its row-level audit events."""

    directory: Path
    run_id: str
    suite: str
    status: str
    reason: str | None
    level: SecurityLevel
    experiments: tuple[str, ...]
    baseline: str
    tables: Mapping[str, pa.Table]
    plan: tuple[Mapping[str, Any], ...]
    row_events: RowEvents = field(repr=False)
    comparisons: tuple[Comparison, ...] = ()


def open_run(directory: Path | str, *, label: str = "") -> RunOutputs:
    """The run in ``directory``; ``label`` (for a second run) prefixes its experiment names.

    Raises :class:`ViewError` naming the file: no manifest, no audit log, a results file missing
    or differing from its recorded digest, or a run that never started its experiments."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    started, plan, row_events = _read_audit(directory, label)
    artifacts = {entry["path"]: entry for entry in manifest.get("artifacts", [])}
    tables: dict[str, pa.Table] = {}
    for experiment in started["experiments"]:
        entry = _results_artifact(experiment, artifacts)
        if entry is None:
            continue  # a run stopped before this experiment wrote a row
        tables[label + experiment] = _read_verified(directory, entry)
    if started["baseline"] not in started["experiments"]:
        raise ViewError(f"{directory / 'audit.jsonl'}: the baseline is not among the experiments")
    comparisons = tuple(
        Comparison(name, label + variant, _read_verified(directory, entry))
        for (name, variant), entry in _comparison_artifacts(artifacts, started["experiments"])
    )
    return RunOutputs(
        directory=directory,
        run_id=str(manifest["run_id"]),
        suite=str(started["suite"]),
        status=str(manifest["status"]),
        reason=manifest.get("reason"),
        level=_level(directory / "manifest.json", manifest.get("classification")),
        experiments=tuple(
            label + name for name in started["experiments"] if label + name in tables
        ),
        baseline=label + started["baseline"],
        tables=tables,
        plan=plan,
        row_events=row_events,
        comparisons=comparisons,
    )


def _comparison_artifacts(
    artifacts: Mapping[str, Mapping[str, Any]], experiments: Sequence[str]
) -> list[tuple[tuple[str, str], Mapping[str, Any]]]:
    """(comparison, variant) -> its results file (the best readable format): the files named
    ``compare__<comparison>__<variant>__<sink>`` (a pairwise judge's per-row file, with one
    more part, is not a comparison's summary)."""
    chosen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for path, entry in artifacts.items():
        suffix = Path(path).suffix
        parts = Path(path).stem.split("__")
        if suffix not in READABLE or len(parts) != 4 or parts[0] != COMPARE_PREFIX:
            continue
        key = (parts[1], parts[2])
        if key[1] not in experiments:
            continue
        best = chosen.get(key)
        if best is None or READABLE.index(suffix) < READABLE.index(Path(best["path"]).suffix):
            chosen[key] = entry
    return sorted(chosen.items())


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ViewError(f"{path}: no run manifest; is {directory} a run directory?") from None
    except (OSError, ValueError) as error:
        raise ViewError(f"{path}: cannot be read ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "elspeth-run-manifest-v1":
        raise ViewError(f"{path}: not an Elspeth run manifest")
    return manifest


def _level(path: Path, name: object) -> SecurityLevel:
    try:
        return SecurityLevel.parse(str(name))
    except LevelParseError:
        raise ViewError(f"{path}: classification {name!r} is not a level") from None


# The audit log's own compact form (suite/_audit.py): the envelope's "event" and "prev" come
# first, then the event's fields in their declared order. A quote inside a JSON string is
# escaped, so none of these can match text that an answer or an error message holds.
_HEADER_MARKS: Final = (b'"event":"run_started"', b'"event":"clearance_decision"')
_ROW_LINE: Final = re.compile(
    rb'"event":"(?:'
    + b"|".join(name.encode() for name in sorted(ROW_EVENTS))
    + rb')","prev":"[0-9a-f]{64}","experiment":"((?:[^"\\]|\\.)*)","row":(\d+)'
)


def _line_at(log: mmap.mmap, position: int) -> bytes:
    start = log.rfind(b"\n", 0, position) + 1
    end = log.find(b"\n", position)
    return log[start : len(log) if end < 0 else end]


class RowEvents:
    """A run's row-level audit events (answers' and judges' calls), found by (experiment, row).

    Built on first use, or ahead of it by :meth:`prepare` in a thread: the index holds each
    line's offset only (found by one regular-expression scan of the mapped file), so a run of
    100,000 rows opens without parsing 600,000 lines, and a row's drill-down parses its own."""

    def __init__(self, path: Path, label: str) -> None:
        self._path = path
        self._label = label
        self._lock = threading.Lock()
        self._offsets: dict[int, list[tuple[str, int]]] | None = None
        """Row -> (experiment, byte offset) of each of its lines, in the log's order."""

    def prepare(self) -> None:
        with self._lock:
            if self._offsets is None:
                self._offsets = self._index()

    def _index(self) -> dict[int, list[tuple[str, int]]]:
        offsets: defaultdict[int, list[tuple[str, int]]] = defaultdict(list)
        names: dict[bytes, str] = {}
        with _mapped(self._path) as log:
            for match in _ROW_LINE.finditer(log):
                raw = match.group(1)
                if raw not in names:
                    names[raw] = self._label + json.loads(b'"' + raw + b'"')
                offsets[int(match.group(2))].append((names[raw], match.start()))
        return dict(offsets)

    def for_rows(self, rows: Iterable[int]) -> dict[int, dict[str, list[dict[str, Any]]]]:
        """Row -> experiment -> the row's events, in the log's order (rows without any left
        out); only these rows' lines are parsed."""
        self.prepare()
        assert self._offsets is not None
        found: dict[int, dict[str, list[dict[str, Any]]]] = {}
        with _mapped(self._path) as log:
            for row in rows:
                for experiment, position in self._offsets.get(row, ()):
                    event = json.loads(_line_at(log, position))
                    found.setdefault(row, {}).setdefault(experiment, []).append(event)
        return found


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise ViewError(f"{path}: the audit log is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as log:
            yield log


def _read_audit(
    directory: Path, label: str
) -> tuple[dict[str, Any], tuple[Mapping[str, Any], ...], RowEvents]:
    """The run's ``run_started`` event and its clearance decisions (the only lines parsed
    now), and its row events, indexed when first asked for."""
    path = directory / "audit.jsonl"
    found: list[tuple[int, bytes]] = []
    try:
        with _mapped(path) as log:
            for mark in _HEADER_MARKS:
                position = log.find(mark)
                while position >= 0:
                    found.append((position, _line_at(log, position)))
                    position = log.find(mark, position + len(mark))
    except FileNotFoundError:
        raise ViewError(f"{path}: no audit log in the run directory") from None
    started: dict[str, Any] | None = None
    plan: list[Mapping[str, Any]] = []
    for position, line in sorted(found):
        try:
            event = json.loads(line)
        except ValueError:
            raise ViewError(f"{path}: the line at byte {position} is not JSON") from None
        if event.get("event") == "run_started":
            started = event  # a resumed run's last start
        elif event.get("event") == "clearance_decision":
            plan.append(event)
    if started is None:
        raise ViewError(f"{path}: no run_started event; the run never started")
    if "experiments" not in started:
        raise ViewError(
            f"{path}: the run_started event names no experiments: the run was written by an "
            "Elspeth older than the viewer, which cannot tell its baseline"
        )
    # A resumed run plans again: each component's last decision.
    plan = list({str(decision.get("component")): decision for decision in plan}.values())
    return started, tuple(plan), RowEvents(path, label)


def _results_artifact(
    experiment: str, artifacts: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    candidates = [
        entry
        for path, entry in artifacts.items()
        if path.startswith(experiment + RESULTS_INFIX) and Path(path).suffix in READABLE
    ]
    candidates.sort(key=lambda entry: READABLE.index(Path(entry["path"]).suffix))
    return candidates[0] if candidates else None


def _read_verified(directory: Path, entry: Mapping[str, Any]) -> pa.Table:
    from elspeth.sinks._files import file_digest_hex

    name = str(entry["path"])
    path = directory / name
    if Path(name).name != name or not path.is_file():
        raise ViewError(f"{path}: listed in the manifest but missing")
    if file_digest_hex(path) != entry.get("blake3"):
        raise ViewError(f"{path}: differs from the digest in the manifest; not shown")
    try:
        return _read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise ViewError(f"{path}: cannot be read ({error})") from None


def _read_table(path: Path) -> pa.Table:
    """A results file as Arrow; the marking line a CSV or JSONL sink writes first is skipped
    (the level shown is the manifest's)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    data = path.read_bytes()
    first, _, rest = data.partition(b"\n")
    if path.suffix == ".jsonl":
        import pyarrow.json as pj

        body = rest if first.startswith(b'{"' + JSONL_HEADER_KEY.encode()) else data
        return pj.read_json(io.BytesIO(body))
    import pyarrow.csv as pcsv

    body = rest if first.startswith(CSV_BANNER_PREFIX.encode()) else data
    return pcsv.read_csv(io.BytesIO(body))


def criteria_of(columns: Iterable[str]) -> tuple[str, ...]:
    """The criteria (and answer columns) a run generated: every ``<c>_response``."""
    return tuple(c.removesuffix("_response") for c in columns if c.endswith("_response"))


def graders_of(columns: Sequence[str]) -> tuple[str, ...]:
    """Scorers and judges: every ``<g>_outcome`` beside a ``<g>_explanation``."""
    names = set(columns)
    return tuple(
        c.removesuffix("_outcome")
        for c in columns
        if c.endswith("_outcome") and c.removesuffix("_outcome") + "_explanation" in names
    )
