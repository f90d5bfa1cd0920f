"""Side by side: one row per input, the baseline's and every other experiment's results beside
it, as one Arrow table with the derived columns every filter needs computed once.

Column names: the key (``_row``, and ``_repeat`` for repeated runs), the input columns as they
are, each experiment's own columns as ``<experiment>.<column>``, and derived columns under
``__`` (status, deltas against the baseline, the largest delta, whether a variant differs, the
lower-cased search text).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from elspeth.view._errors import ViewError
from elspeth.view._run import REPEAT, ROW, RunOutputs, criteria_of, graders_of

INDEX: Final = "__index"
STATUS: Final = "__status"
MAX_DELTA: Final = "__max_delta"
DIFFERENT: Final = "__different"
SEARCH: Final = "__search"


def qualified(experiment: str, column: str) -> str:
    return f"{experiment}.{column}"


def delta_column(experiment: str, score: str) -> str:
    return f"__delta.{experiment}.{score}"


def status_column(experiment: str) -> str:
    return f"{STATUS}.{experiment}"


def present_column(experiment: str) -> str:
    return f"__present.{experiment}"


@dataclass(frozen=True)
class SideBySide:
    """``experiments`` has the baseline first. ``scores`` maps a score's name (a criterion with
    ``<c>_score``, a scorer or judge with ``<g>_value``) to its column suffix."""

    experiments: tuple[str, ...]
    baseline: str
    key: tuple[str, ...]
    inputs: tuple[str, ...]
    criteria: tuple[str, ...]
    graders: tuple[str, ...]
    scores: dict[str, str]
    own: dict[str, tuple[str, ...]]
    table: pa.Table

    @property
    def variants(self) -> tuple[str, ...]:
        return self.experiments[1:]

    def score_column(self, experiment: str, score: str) -> str:
        return qualified(experiment, self.scores[score])


def side_by_side(runs: Sequence[RunOutputs]) -> SideBySide:
    """The runs' experiments joined on the row key, the first run's baseline first."""
    baseline = runs[0].baseline
    tables = {name: table for run in runs for name, table in run.tables.items()}
    if baseline not in tables:
        raise ViewError(
            f"{runs[0].directory}: the baseline {baseline} wrote no results file; the viewer "
            "reads the csv, jsonl or parquet sinks of a run's experiments"
        )
    experiments = (baseline, *(name for name in tables if name != baseline))
    base = tables[baseline]
    key = tuple(c for c in (ROW, REPEAT) if c in base.column_names)
    if ROW not in key:
        raise ViewError(f"{runs[0].directory}: the baseline's results have no {ROW} column")
    generated = _generated_prefixes(tables.values())
    inputs = tuple(c for c in base.column_names if c not in key and not c.startswith(generated))
    wide = base.select([*key, *inputs]).sort_by([(c, "ascending") for c in key])
    own: dict[str, tuple[str, ...]] = {}
    for name in experiments:
        table = tables[name]
        missing = [c for c in key if c not in table.column_names]
        if missing:
            raise ViewError(f"experiment {name}'s results have no {missing[0]} column")
        columns = tuple(c for c in table.column_names if c not in key and c not in inputs)
        own[name] = columns
        renamed = _joinable(table.select([*key, *columns])).rename_columns(
            [*key, *(qualified(name, c) for c in columns)]
        )
        # True on each of its rows; null after the join where the experiment has no result.
        renamed = renamed.append_column(present_column(name), pa.repeat(True, renamed.num_rows))
        wide = _beside(wide, renamed, key)
    criteria = tuple(dict.fromkeys(c for t in tables.values() for c in criteria_of(t.column_names)))
    graders = tuple(dict.fromkeys(g for t in tables.values() for g in graders_of(t.column_names)))
    scores = {c: f"{c}_score" for c in criteria if _anywhere(f"{c}_score", own)}
    scores |= {g: f"{g}_value" for g in graders if _anywhere(f"{g}_value", own)}
    view = SideBySide(experiments, baseline, key, inputs, criteria, graders, scores, own, wide)
    return _with_derived(view)


def _beside(wide: pa.Table, table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """``table``'s columns added to ``wide`` row by row on ``key`` (``wide``'s rows kept, in
    order). When ``table`` holds the same keys in the same order, as an experiment that ran
    every row does, its columns are put beside ``wide``'s as they are; otherwise by a join."""
    same = table.num_rows == wide.num_rows and all(table[c].equals(wide[c]) for c in key)
    if not same:
        joined = wide.join(table, keys=list(key), join_type="left outer")
        return joined.sort_by([(c, "ascending") for c in key])
    for name in table.column_names:
        if name not in key:
            wide = wide.append_column(name, table[name])
    return wide


def _joinable(table: pa.Table) -> pa.Table:
    """``table`` with its all-null columns (Arrow's null type, which a join refuses) as text."""
    for index, kind in enumerate(table.schema.types):
        if pa.types.is_null(kind):
            name = table.column_names[index]
            table = table.set_column(index, name, table[name].cast(pa.large_string()))
    return table


def _generated_prefixes(tables: Iterable[pa.Table]) -> tuple[str, ...]:
    """``<criterion>_`` and ``<grader>_``: the columns a run added to the datasource's."""
    prefixes: set[str] = set()
    for table in tables:
        names = table.column_names
        prefixes |= {f"{c}_" for c in criteria_of(names)}
        prefixes |= {f"{g}_" for g in graders_of(names)}
    return tuple(sorted(prefixes))


def _anywhere(column: str, own: dict[str, tuple[str, ...]]) -> bool:
    return any(column in columns for columns in own.values())


def _column(view: SideBySide, table: pa.Table, experiment: str, column: str) -> pa.ChunkedArray:
    name = qualified(experiment, column)
    if name in table.column_names:
        return table[name]
    return pa.chunked_array([pa.nulls(table.num_rows)])


def _with_derived(view: SideBySide) -> SideBySide:
    table = view.table
    for experiment in view.experiments:
        table = table.append_column(status_column(experiment), _status(view, table, experiment))
    deltas = []
    for variant in view.variants:
        for score, suffix in view.scores.items():
            delta = pc.subtract(
                pc.cast(_column(view, table, variant, suffix), pa.float64()),
                pc.cast(_column(view, table, view.baseline, suffix), pa.float64()),
            )
            table = table.append_column(delta_column(variant, score), delta)
            deltas.append(pc.abs(delta))
    if deltas:
        largest = deltas[0]
        for delta in deltas[1:]:
            largest = pc.max_element_wise(largest, delta, skip_nulls=True)
    else:
        largest = pa.chunked_array([pa.nulls(table.num_rows, pa.float64())])
    table = table.append_column(MAX_DELTA, largest)
    table = table.append_column(DIFFERENT, _different(view, table))
    table = table.append_column(SEARCH, _search_text(view, table))
    table = table.append_column(INDEX, pa.array(range(table.num_rows), pa.int64()))
    return SideBySide(**{**view.__dict__, "table": table})


def _status(view: SideBySide, table: pa.Table, experiment: str) -> pa.ChunkedArray:
    """``error`` if any of its answers or grades is an error, else ``fail`` if a grade failed,
    else ``pass`` if it was graded, else ``ok``; ``absent`` for a row it has no result for."""
    outcomes = [_column(view, table, experiment, f"{c}_outcome") for c in view.criteria]
    grades = [_column(view, table, experiment, f"{g}_outcome") for g in view.graders]
    present = pc.fill_null(table[present_column(experiment)], False)
    error = _any([pc.equal(o, "error") for o in outcomes + grades], table.num_rows)
    failed = _any([pc.equal(g, "fail") for g in grades], table.num_rows)
    graded = _any([pc.is_valid(g) for g in grades], table.num_rows)
    status = pc.if_else(
        error, "error", pc.if_else(failed, "fail", pc.if_else(graded, "pass", "ok"))
    )
    return pc.if_else(present, status, "absent")


def _any(masks: list[pa.ChunkedArray], rows: int) -> pa.ChunkedArray:
    result = pa.chunked_array([pa.repeat(False, rows)])
    for mask in masks:
        result = pc.or_(result, pc.fill_null(mask, False))
    return result


def _different(view: SideBySide, table: pa.Table) -> pa.ChunkedArray:
    """A variant disagrees with the baseline: a score differs (a missing one on one side only
    counts), or, where nothing is scored, an answer's text differs."""
    masks = []
    suffixes = list(view.scores.values()) or [f"{c}_response" for c in view.criteria]
    for variant in view.variants:
        for suffix in suffixes:
            mine = _column(view, table, variant, suffix)
            theirs = _column(view, table, view.baseline, suffix)
            differs = pc.fill_null(pc.not_equal(mine, theirs), False)
            one_missing = pc.xor(pc.is_null(mine), pc.is_null(theirs))
            masks.append(pc.or_(differs, one_missing))
    return _any(masks, table.num_rows)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _search_text(view: SideBySide, table: pa.Table) -> pa.ChunkedArray:
    """Every text input and answer of the row, lower-cased, joined by newlines."""
    parts = [table[c] for c in view.inputs if _is_text(table[c].type)]
    for experiment in view.experiments:
        parts += [_column(view, table, experiment, f"{c}_response") for c in view.criteria]
    if not parts:
        return pa.chunked_array([pa.array([""] * table.num_rows)])
    texts = [pc.fill_null(pc.cast(part, pa.large_string()), "") for part in parts]
    return pc.utf8_lower(pc.binary_join_element_wise(*texts, pa.scalar("\n", pa.large_string())))
