"""What the viewer's pages ask of a side-by-side table: a filtered, sorted page of rows, one
row's drill-down, a score histogram, a word diff and a CSV of the filtered rows.

Every parameter arrives as text from the page and is checked here; a bad one raises
:class:`ViewError` naming it and its value. Filtering and paging run on the server over Arrow,
so a page holds at most :data:`MAX_LIMIT` rows whatever the run's size.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc

from elspeth.view._errors import ViewError
from elspeth.view._expression import compile_filter
from elspeth.view._run import RunOutputs
from elspeth.view._table import (
    DIFFERENT,
    INDEX,
    MAX_DELTA,
    SEARCH,
    SideBySide,
    delta_column,
    qualified,
    status_column,
)

Mode = Literal["all", "failures", "errors", "different", "delta"]
StatusFilter = Literal["", "pass", "fail", "error", "ok", "absent"]
MAX_LIMIT: Final = 500
MAX_POINTS: Final = 2000
MAX_SEARCH: Final = 500
CELL_PREVIEW: Final = 2000
"""Characters of an answer a table cell carries; the drill-down has the whole text."""
_WORDS: Final = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Query:
    mode: Mode = "all"
    search: str = ""
    regex: bool = False
    expression: str = ""
    experiment: str = ""
    score: str = ""
    low: float | None = None
    high: float | None = None
    status: StatusFilter = ""
    pair_variant: str = ""
    pair_x: float | None = None
    pair_y: float | None = None
    offset: int = 0
    limit: int = 50

    @classmethod
    def from_params(cls, params: Mapping[str, str], view: SideBySide) -> Query:
        """The query of a request's parameters; unknown parameters are refused by name."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known - {"token"})
        if unknown:
            raise ViewError(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
        mode = params.get("mode", "all")
        if mode not in get_args(Mode):
            raise ViewError(f"mode {mode!r} is not one of {', '.join(get_args(Mode))}")
        status = params.get("status", "")
        if status not in get_args(StatusFilter):
            raise ViewError(
                f"status {status!r} is not one of {', '.join(get_args(StatusFilter)[1:])}"
            )
        experiment = params.get("experiment", "")
        if experiment:
            _require_experiment(view, experiment)
        score = params.get("score", "")
        if score and score not in view.scores:
            raise ViewError(f"score {score!r} is not one of {', '.join(view.scores) or '(none)'}")
        search = params.get("search", "")
        if len(search) > MAX_SEARCH:
            raise ViewError(f"search: {len(search)} characters; at most {MAX_SEARCH}")
        return cls(
            mode=mode,  # type: ignore[arg-type]
            search=search,
            regex=_flag(params, "regex"),
            expression=params.get("expression", ""),
            experiment=experiment,
            score=score,
            low=_number(params, "low"),
            high=_number(params, "high"),
            status=status,  # type: ignore[arg-type]
            pair_variant=_pair_variant(params, view, score),
            pair_x=_number(params, "pair_x"),
            pair_y=_number(params, "pair_y"),
            offset=whole_number(params, "offset", 0, 0, 10**9),
            limit=whole_number(params, "limit", 50, 1, MAX_LIMIT),
        )


def _pair_variant(params: Mapping[str, str], view: SideBySide, score: str) -> str:
    """A scatter point's filter: the variant whose ``score`` is ``pair_y`` where the
    baseline's is ``pair_x``; it needs all four parameters."""
    variant = params.get("pair_variant", "")
    if not variant:
        return ""
    if variant not in view.variants:
        raise ViewError(f"pair_variant {variant!r} is not one of {', '.join(view.variants)}")
    if not score or params.get("pair_x", "") == "" or params.get("pair_y", "") == "":
        raise ViewError("pair_variant needs score, pair_x and pair_y")
    return variant


def _flag(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "")
    if value not in ("", "0", "1", "true", "false"):
        raise ViewError(f"{name} {value!r} is not 1 or 0")
    return value in ("1", "true")


def _number(params: Mapping[str, str], name: str) -> float | None:
    value = params.get(name, "")
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ViewError(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ViewError(f"{name} {value!r} is not a finite number")
    return number


def whole_number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if value == "":
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise ViewError(f"{name} {value!r} is not a whole number from {low} to {high}")
    return int(value)


def resolver(view: SideBySide) -> Callable[[str], str | None]:
    """Filter-expression names -> columns: an input, ``experiment.column``, or the baseline's."""
    columns = set(view.table.column_names)

    def resolve(name: str) -> str | None:
        if name in view.inputs:
            return name
        if name in columns and "." in name and not name.startswith("__"):
            return name
        baseline = qualified(view.baseline, name)
        return baseline if baseline in columns else None

    return resolve


def apply(view: SideBySide, query: Query) -> pa.Array:
    """The positions in the side-by-side table of the rows ``query`` selects, in its order (by
    row, or the largest delta first). Only the columns the query reads are filtered; the caller
    takes its page of whole rows by position."""
    table = view.table
    experiments = [query.experiment] if query.experiment else list(view.experiments)
    masks = []
    if query.mode == "errors":
        masks.append(_any_status(table, experiments, "error"))
    elif query.mode == "failures":
        masks.append(_any_status(table, experiments, "fail", "error"))
    elif query.mode == "different":
        masks.append(table[DIFFERENT])
    if query.status:
        masks.append(_any_status(table, experiments, query.status))
    if query.search:
        masks.append(_search(table, query))
    if query.score and (query.low is not None or query.high is not None):
        masks.append(_score_range(view, query, experiments))
    if query.pair_variant:
        masks.append(_pair(view, query))
    compiled = compile_filter(query.expression, resolver(view)) if query.expression else None
    narrow = table.select([INDEX, *(sorted(compiled.columns) if compiled else [])])
    if masks:
        narrow = narrow.filter(_all(masks))
    if compiled is not None:
        try:
            narrow = narrow.filter(compiled.expression)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
            raise ViewError(f"filter: {_arrow_reason(error)}") from None
    positions = narrow[INDEX].combine_chunks()
    if query.mode == "delta":  # stable: equal deltas stay in row order; nulls last
        deltas = pc.take(table[MAX_DELTA], positions)
        positions = pc.take(positions, pc.array_sort_indices(deltas, order="descending"))
    return positions


def _all(masks: Sequence[pa.ChunkedArray]) -> pa.ChunkedArray:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.and_(result, mask)
    return result


def _arrow_reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]


def _any_status(table: pa.Table, experiments: Sequence[str], *statuses: str) -> pa.ChunkedArray:
    """Whether any of ``experiments`` has one of ``statuses`` on the row."""
    wanted = pa.array(statuses)
    found = [pc.is_in(table[status_column(experiment)], wanted) for experiment in experiments]
    return _any(found)


def _any(masks: Sequence[pa.ChunkedArray]) -> pa.ChunkedArray:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.or_(result, mask)
    return result


def _search(table: pa.Table, query: Query) -> pa.ChunkedArray:
    text = table[SEARCH]
    if query.regex:
        try:  # RE2, linear in the text: no pattern can make the server backtrack
            return pc.match_substring_regex(text, query.search, ignore_case=True)
        except pa.ArrowInvalid as error:
            raise ViewError(f"search: not a regular expression ({_arrow_reason(error)})") from None
    return pc.match_substring(text, query.search.lower())


def _pair(view: SideBySide, query: Query) -> pa.ChunkedArray:
    base = pc.cast(view.table[view.score_column(view.baseline, query.score)], pa.float64())
    mine = pc.cast(view.table[view.score_column(query.pair_variant, query.score)], pa.float64())
    both = pc.and_(pc.equal(base, query.pair_x), pc.equal(mine, query.pair_y))
    return pc.fill_null(both, False)


def _score_range(view: SideBySide, query: Query, experiments: Sequence[str]) -> pa.ChunkedArray:
    result = pa.chunked_array([pa.repeat(False, view.table.num_rows)])
    for experiment in experiments:
        column = view.score_column(experiment, query.score)
        if column not in view.table.column_names:
            continue
        values = pc.cast(view.table[column], pa.float64())
        inside = pc.is_valid(values)
        if query.low is not None:
            inside = pc.and_(inside, pc.greater_equal(values, query.low))
        if query.high is not None:
            inside = pc.and_(inside, pc.less_equal(values, query.high))
        result = pc.or_(result, pc.fill_null(inside, False))
    return result


def page(view: SideBySide, query: Query, runs: Sequence[RunOutputs] = ()) -> dict[str, Any]:
    """One page of the selected rows as the table shows them; with ``runs``, each error cell
    carries its reasons from the audit log (only the page's error rows' lines are read)."""
    positions = apply(view, query)
    window = view.table.take(positions.slice(query.offset, query.limit)).to_pylist()
    rows = [_row_cells(view, row) for row in window]
    failed = [row for row in rows if any(c["status"] == "error" for c in row["cells"].values())]
    if failed and runs:
        numbers = [row["key"]["_row"] for row in failed]
        events: dict[int, dict[str, list[dict[str, Any]]]] = {}
        for run in runs:
            for number, found in run.row_events.for_rows(numbers).items():
                events.setdefault(number, {}).update(found)
        for row in failed:
            repeat = row["key"].get("_repeat", 0)
            for experiment, cell in row["cells"].items():
                if cell["status"] == "error":
                    calls = events.get(row["key"]["_row"], {}).get(experiment, [])
                    answers = _reasons(e for e in calls if e.get("repeat", 0) == repeat)
                    cell["reasons"] = answers + cell["reasons"]
    return {
        "total": len(positions),
        "of": view.table.num_rows,
        "offset": query.offset,
        "rows": rows,
    }


def _reasons(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why each of a row's answers that failed failed, ``<criterion>: <the recorded reason>``
    (a grader's errors are in its own explanation column)."""
    return [
        f"{e.get('criterion')}: {e.get('error_message') or e.get('error_kind')}"
        for e in events
        if e.get("event") == "llm_result" and e.get("outcome") not in (None, "ok")
    ]


def _row_cells(view: SideBySide, row: Mapping[str, Any]) -> dict[str, Any]:
    cells = {}
    for experiment in view.experiments:
        cells[experiment] = {
            "status": row[status_column(experiment)],
            "answers": {
                c: _preview(row.get(qualified(experiment, f"{c}_response"))) for c in view.criteria
            },
            "scores": {
                s: _json_number(row.get(view.score_column(experiment, s))) for s in view.scores
            },
            "deltas": {
                s: _json_number(row.get(delta_column(experiment, s)))
                for s in view.scores
                if experiment != view.baseline
            },
            "grades": {g: row.get(qualified(experiment, f"{g}_outcome")) for g in view.graders},
            "reasons": [
                f"{g}: {row.get(qualified(experiment, f'{g}_explanation'))}"
                for g in view.graders
                if row.get(qualified(experiment, f"{g}_outcome")) == "error"
            ],
        }
    return {
        "key": {k: row[k] for k in view.key},
        "inputs": {c: _json_value(row[c]) for c in view.inputs},
        "cells": cells,
    }


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= CELL_PREVIEW else text[:CELL_PREVIEW] + "…"


def _json_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def detail(view: SideBySide, runs: Sequence[RunOutputs], row: int, repeat: int) -> dict[str, Any]:
    """Everything about one row: its inputs, every column of every experiment (whole texts),
    and the audit events the runs recorded for it."""
    table = view.table
    mask = pc.equal(table["_row"], row)
    if "_repeat" in view.key:
        mask = pc.and_(mask, pc.equal(table["_repeat"], repeat))
    found = table.filter(mask).to_pylist()
    if not found:
        raise ViewError(f"row {row} (repeat {repeat}) is not in the run")
    values = found[0]
    events = {
        experiment: found
        for run in runs
        for experiment, found in run.row_events.for_rows([row]).get(row, {}).items()
    }
    return {
        "key": {k: values[k] for k in view.key},
        "inputs": {c: _json_value(values[c]) for c in view.inputs},
        "experiments": {
            experiment: {
                "status": values[status_column(experiment)],
                "columns": {
                    c: _json_value(values.get(qualified(experiment, c)))
                    for c in view.own[experiment]
                },
                "events": [e for e in events.get(experiment, []) if e.get("repeat", 0) == repeat],
            }
            for experiment in view.experiments
        },
    }


def histogram(view: SideBySide, score: str, bins: int = 10) -> dict[str, Any]:
    """Per experiment, how many rows' ``score`` falls in each of ``bins`` equal ranges (whole
    numbers get a bar each when there are at most 20 of them)."""
    if score not in view.scores:
        raise ViewError(f"score {score!r} is not one of {', '.join(view.scores) or '(none)'}")
    arrays = {}
    for experiment in view.experiments:
        column = view.score_column(experiment, score)
        if column in view.table.column_names:
            values = pc.drop_null(pc.cast(view.table[column], pa.float64()))
            arrays[experiment] = values
    present = [a for a in arrays.values() if len(a)]
    if not present:
        return {"score": score, "edges": [], "counts": {}}
    low = min(pc.min(a).as_py() for a in present)
    high = max(pc.max(a).as_py() for a in present)
    whole = all(pc.all(pc.equal(a, pc.floor(a))).as_py() for a in present)
    if whole and high - low <= 20:
        edges = [low + i - 0.5 for i in range(int(high - low) + 2)]
    else:
        width = (high - low) / bins or 1.0
        edges = [low + i * width for i in range(bins + 1)]
    bars = len(edges) - 1
    width = edges[1] - edges[0]
    counts = {}
    for experiment, values in arrays.items():
        # Equal widths: a value's bar is its distance from the first edge in widths; the
        # highest value belongs to the last bar.
        bar = pc.cast(pc.floor(pc.divide(pc.subtract(values, edges[0]), width)), pa.int64())
        bar = pc.min_element_wise(pc.max_element_wise(bar, 0), bars - 1)
        found = {c["values"]: c["counts"] for c in pc.value_counts(bar).to_pylist()}
        counts[experiment] = [found.get(i, 0) for i in range(bars)]
    return {"score": score, "edges": edges, "counts": counts}


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """``after`` against ``before`` as (``same``/``added``/``removed``, text) runs of words."""
    old, new = _WORDS.findall(before), _WORDS.findall(after)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    runs: list[tuple[str, str]] = []
    for operation, a1, a2, b1, b2 in matcher.get_opcodes():
        if operation == "equal":
            runs.append(("same", "".join(old[a1:a2])))
            continue
        if a2 > a1:
            runs.append(("removed", "".join(old[a1:a2])))
        if b2 > b1:
            runs.append(("added", "".join(new[b1:b2])))
    return runs


def _require_experiment(view: SideBySide, experiment: str) -> None:
    if experiment not in view.experiments:
        raise ViewError(f"experiment {experiment!r} is not one of {', '.join(view.experiments)}")


def diff(
    view: SideBySide, row: int, repeat: int, experiment: str, criterion: str
) -> dict[str, Any]:
    """A variant's answer against the baseline's to the same row, word by word."""
    _require_experiment(view, experiment)
    if criterion not in view.criteria:
        raise ViewError(f"criterion {criterion!r} is not one of {', '.join(view.criteria)}")
    values = detail(view, (), row, repeat)["experiments"]
    column = f"{criterion}_response"
    before = values[view.baseline]["columns"].get(column) or ""
    after = values[experiment]["columns"].get(column) or ""
    return {"experiment": experiment, "criterion": criterion, "runs": word_diff(before, after)}


def _csv_cell(value: Any) -> Any:
    from elspeth.sinks import neutralise_formula

    if isinstance(value, str):
        return neutralise_formula(value)
    return "" if value is None else value


def filtered_csv(view: SideBySide, query: Query) -> bytes:
    """Every row ``query`` selects (not just a page), every column but the derived ones, as
    CSV whose text cells cannot run as spreadsheet formulas."""
    from elspeth.sinks import neutralise_formula

    selected = view.table.take(apply(view, query))
    columns = [c for c in selected.column_names if not c.startswith("__")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([neutralise_formula(c) for c in columns])
    for row in selected.select(columns).to_pylist():
        writer.writerow([_csv_cell(value) for value in row.values()])
    return out.getvalue().encode("utf-8")


def statistics(view: SideBySide) -> dict[str, Any]:
    """Per experiment: its rows' statuses, each score's count and mean, its cost and its mean
    latency per answer."""
    table = view.table
    result: dict[str, Any] = {}
    for experiment in view.experiments:
        statuses = pc.value_counts(table[status_column(experiment)]).to_pylist()
        scores = {}
        for score in view.scores:
            column = view.score_column(experiment, score)
            if column in table.column_names:
                values = pc.cast(table[column], pa.float64())
                scores[score] = {
                    "count": pc.count(values).as_py(),
                    "mean": _json_number(pc.mean(values).as_py()),
                }
        costs = [
            pc.sum(pc.cast(table[c], pa.float64())).as_py() or 0.0
            for c in (qualified(experiment, f"{k}_cost") for k in view.criteria)
            if c in table.column_names
        ]
        latencies = [
            table[c]
            for c in (qualified(experiment, f"{k}_latency_ms") for k in view.criteria)
            if c in table.column_names
        ]
        mean_latency = (
            pc.mean(pa.chunked_array([chunk for a in latencies for chunk in a.chunks])).as_py()
            if latencies
            else None
        )
        result[experiment] = {
            "statuses": {s["values"]: s["counts"] for s in statuses},
            "scores": scores,
            "cost": sum(costs) if costs else None,
            "mean_latency_ms": _json_number(mean_latency),
        }
    return result


#: Where a comparison's rows keep their estimate and interval, the first present wins: the
#: paired test's (rows matched by input), the unpaired one's, a pairwise judge's win rate, a
#: pass-rate difference (no interval).
_ESTIMATES: Final = (
    ("paired_estimate", "paired_ci_low", "paired_ci_high"),
    ("estimate", "ci_low", "ci_high"),
    ("win_rate", "win_rate_ci_low", "win_rate_ci_high"),
    ("pass_rate_difference", "", ""),
    ("difference", "", ""),
)


def forest(runs: Sequence[RunOutputs]) -> list[dict[str, Any]]:
    """Every comparison of a variant with the baseline: per criterion its estimate, interval
    (where the comparison has one), what the estimate is, and the verdict."""
    found = []
    for run in runs:
        for comparison in run.comparisons:
            rows = []
            for values in comparison.table.to_pylist():
                estimate = next(
                    (e for e in _ESTIMATES if _json_number(values.get(e[0])) is not None), None
                )
                rows.append(
                    {
                        "criterion": _json_value(values.get("criterion")),
                        "measure": estimate[0] if estimate else None,
                        "estimate": _json_number(values.get(estimate[0])) if estimate else None,
                        "low": _json_number(values.get(estimate[1])) if estimate else None,
                        "high": _json_number(values.get(estimate[2])) if estimate else None,
                        "significant": _json_value(values.get("significant")),
                        "verdict": _json_value(values.get("verdict")),
                    }
                )
            found.append(
                {"comparison": comparison.name, "variant": comparison.variant, "rows": rows}
            )
    return found


def scatter(view: SideBySide, score: str, variant: str) -> dict[str, Any]:
    """The baseline's ``score`` against ``variant``'s on the same rows, identical pairs merged
    (with their count), at most :data:`MAX_POINTS` points."""
    if score not in view.scores:
        raise ViewError(f"score {score!r} is not one of {', '.join(view.scores) or '(none)'}")
    if variant not in view.variants:
        raise ViewError(f"variant {variant!r} is not one of {', '.join(view.variants)}")
    columns = [view.score_column(view.baseline, score), view.score_column(variant, score)]
    if any(c not in view.table.column_names for c in columns):
        return {"score": score, "variant": variant, "points": [], "merged": 0}
    pairs = view.table.select(columns).rename_columns(["x", "y"])
    pairs = pairs.filter(pc.and_(pc.is_valid(pairs["x"]), pc.is_valid(pairs["y"])))
    grouped = pairs.group_by(["x", "y"]).aggregate([("x", "count")])
    grouped = grouped.sort_by([("x_count", "descending"), ("x", "ascending"), ("y", "ascending")])
    points = [
        [_json_number(p["x"]), _json_number(p["y"]), p["x_count"]]
        for p in grouped.slice(0, MAX_POINTS).to_pylist()
    ]
    return {"score": score, "variant": variant, "points": points, "merged": pairs.num_rows}
