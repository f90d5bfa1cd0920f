"""The side-by-side table and its queries on small hand-made runs: rows an experiment lacks,
statuses, deltas, modes, histograms, word diffs and the formula-safe CSV (unit tests of
``view._table`` and ``view._query``; the run files themselves are tested through the CLI)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from elspeth.security import SecurityLevel
from elspeth.view import ViewError
from elspeth.view._query import (
    Query,
    detail,
    filtered_csv,
    forest,
    histogram,
    page,
    scatter,
    statistics,
    word_diff,
)
from elspeth.view._run import Comparison, RowEvents, RunOutputs
from elspeth.view._table import SideBySide, side_by_side


def _run(tmp_path: Path, tables: dict[str, pa.Table]) -> RunOutputs:
    audit = tmp_path / "audit.jsonl"
    audit.write_text("{}\n", "utf-8")
    return RunOutputs(
        directory=tmp_path,
        run_id="20261204T000000Z-000000",
        suite="unit",
        status="complete",
        reason=None,
        level=SecurityLevel.OFFICIAL,
        experiments=tuple(tables),
        baseline=next(iter(tables)),
        tables=tables,
        plan=(),
        row_events=RowEvents(audit, ""),
    )


def _results(
    rows: list[int], scores: list[float | None], grades: list[str], **extra: Any
) -> pa.Table:
    return pa.table(
        {
            "_row": rows,
            "region": [["North", "South", "East", "West"][r % 4] for r in rows],
            "q_response": [f"answer {s}" for s in scores],
            "q_outcome": ["error" if s is None else "ok" for s in scores],
            "q_score": pa.array(scores, pa.float64()),
            "exact_value": [1.0 if g == "pass" else 0.0 for g in grades],
            "exact_outcome": grades,
            "exact_explanation": ["why"] * len(rows),
            **extra,
        }
    )


@pytest.fixture
def view(tmp_path: Path) -> SideBySide:
    baseline = _results([0, 1, 2, 3], [1.0, 2.0, None, 4.0], ["pass", "fail", "pass", "pass"])
    # The variant stopped early: no row 3, and its rows arrive out of order; its row 0 has no
    # answer (a failed call), which is not the same as no result.
    variant = _results([2, 0, 1], [3.0, 1.0, 5.0], ["pass", "pass", "pass"])
    variant = variant.set_column(
        variant.column_names.index("q_response"),
        "q_response",
        pa.array(["answer 3.0", None, "answer 5.0"]),
    )
    return side_by_side([_run(tmp_path, {"base": baseline, "v": variant})])


def test_unit_a_variant_missing_rows_is_joined_by_row_and_absent_where_it_has_none(
    view: SideBySide,
) -> None:
    assert view.inputs == ("region",)
    assert view.scores == {"q": "q_score", "exact": "exact_value"}
    table = view.table
    assert table["_row"].to_pylist() == [0, 1, 2, 3]
    assert table["v.q_score"].to_pylist() == [1.0, 5.0, 3.0, None]
    assert table["__status.base"].to_pylist() == ["pass", "fail", "error", "pass"]
    assert table["__status.v"].to_pylist() == ["pass", "pass", "pass", "absent"]
    assert table["__delta.v.q"].to_pylist() == [0.0, 3.0, None, None]
    # Row 0 agrees on both scores; row 3 has no variant result, which counts as different.
    assert table["__different"].to_pylist() == [False, True, True, True]


def _rows(view: SideBySide, **params: str) -> list[int]:
    answer = page(view, Query.from_params(params, view))
    return [row["key"]["_row"] for row in answer["rows"]]


def test_unit_modes_and_filters_select_by_row(view: SideBySide) -> None:
    assert _rows(view) == [0, 1, 2, 3]
    assert _rows(view, mode="errors") == [2]
    assert _rows(view, mode="failures") == [1, 2]
    assert _rows(view, mode="delta") == [1, 0, 2, 3]  # |3|, |0|, then no delta, in row order
    assert _rows(view, status="absent") == [3]
    assert _rows(view, experiment="v", status="pass") == [0, 1, 2]
    assert _rows(view, score="q", low="2", high="4") == [1, 2, 3]  # base 2 and 4, v 3
    assert _rows(view, score="q", low="2", high="4", experiment="base") == [1, 3]
    assert _rows(view, expression="v.q_score > q_score") == [1]
    assert _rows(view, search="answer 5") == [1]
    assert _rows(view, search="ANSWER [35]", regex="1") == [1, 2]
    assert _rows(view, expression='region in ["North", "West"]', offset="1", limit="1") == [3]


def test_unit_a_type_mismatch_in_a_filter_is_a_view_error(view: SideBySide) -> None:
    with pytest.raises(ViewError, match=r"^filter: "):
        _rows(view, expression="region > 3")


def test_unit_the_drill_down_has_every_column_and_refuses_an_unknown_row(view: SideBySide) -> None:
    found = detail(view, (), 1, 0)
    assert found["inputs"] == {"region": "South"}
    assert found["experiments"]["v"]["columns"]["q_response"] == "answer 5.0"
    assert found["experiments"]["v"]["status"] == "pass"
    with pytest.raises(ViewError, match=r"row 9 \(repeat 0\) is not in the run"):
        detail(view, (), 9, 0)


def test_unit_histograms_count_every_value_once(tmp_path: Path) -> None:
    scores = [0.0, 0.05, 0.5, 0.99, 1.0, 0.31]
    table = _results(list(range(6)), scores, ["pass"] * 6)
    view = side_by_side([_run(tmp_path, {"base": table})])
    bars = histogram(view, "q")
    assert len(bars["edges"]) == 11
    assert bars["edges"][0] == 0.0
    assert bars["edges"][-1] == pytest.approx(1.0)
    assert bars["counts"]["base"] == [2, 0, 0, 1, 0, 1, 0, 0, 0, 2]
    whole = histogram(view, "exact")  # all 1.0: one bar per whole number
    assert whole["counts"]["base"] == [6]
    with pytest.raises(ViewError, match="score 'speed' is not one of q, exact"):
        histogram(view, "speed")


def test_unit_word_diff_marks_words_added_and_removed() -> None:
    assert word_diff("the cat sat", "the dog sat down") == [
        ("same", "the "),
        ("removed", "cat"),
        ("added", "dog"),
        ("same", " sat"),
        ("added", " down"),
    ]
    assert word_diff("", "") == []


def test_unit_the_csv_has_every_selected_row_and_no_formula(tmp_path: Path) -> None:
    hostile = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)"]
    table = _results([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], ["pass"] * 4, note=hostile)
    view = side_by_side([_run(tmp_path, {"base": table})])
    text = filtered_csv(view, Query(limit=1)).decode("utf-8")  # every row, not one page
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 5
    assert not any(name.startswith("__") for name in rows[0])
    notes = [row[rows[0].index("note")] for row in rows[1:]]
    assert notes == [f"'{value}" for value in hostile]


def test_unit_statistics_per_experiment(view: SideBySide) -> None:
    stats = statistics(view)
    assert stats["base"]["statuses"] == {"pass": 2, "fail": 1, "error": 1}
    assert stats["base"]["scores"]["q"] == {"count": 3, "mean": pytest.approx(7 / 3)}
    assert stats["v"]["statuses"]["absent"] == 1


def test_unit_scatter_merges_identical_pairs_and_a_point_filters_its_rows(
    view: SideBySide,
) -> None:
    points = scatter(view, "exact", "v")
    assert points["points"] == [[1.0, 1.0, 2], [0.0, 1.0, 1]]  # row 2 (error) still has a grade
    assert points["merged"] == 3
    assert _rows(view, score="exact", pair_variant="v", pair_x="0", pair_y="1") == [1]
    with pytest.raises(ViewError, match="pair_variant needs score, pair_x and pair_y"):
        _rows(view, pair_variant="v", pair_x="0")
    with pytest.raises(ViewError, match="variant 'base' is not one of v"):
        scatter(view, "q", "base")


def test_unit_forest_takes_the_paired_interval_first_and_keeps_the_verdict(tmp_path: Path) -> None:
    table = pa.table(
        {
            "criterion": ["q", "exact", "pairwise:judge"],
            "estimate": [0.5, None, None],
            "ci_low": [0.1, None, None],
            "ci_high": [0.9, None, None],
            "paired_estimate": [0.4, None, None],
            "paired_ci_low": [0.2, None, None],
            "paired_ci_high": [0.6, None, None],
            "pass_rate_difference": [None, 0.25, None],
            "win_rate": [None, None, 0.6],
            "win_rate_ci_low": [None, None, 0.4],
            "win_rate_ci_high": [None, None, float("nan")],
            "significant": [True, False, None],
            "verdict": ["q: better", "exact: no difference", "judge: 6 wins"],
        }
    )
    run = _run(tmp_path, {"base": _results([0], [1.0], ["pass"])})
    run = RunOutputs(**{**run.__dict__, "comparisons": (Comparison("versus", "v", table),)})
    (found,) = forest([run])
    assert (found["comparison"], found["variant"]) == ("versus", "v")
    measures = [(r["measure"], r["estimate"], r["low"], r["high"]) for r in found["rows"]]
    assert measures == [
        ("paired_estimate", 0.4, 0.2, 0.6),
        ("pass_rate_difference", 0.25, None, None),
        ("win_rate", 0.6, 0.4, None),  # NaN is no bound
    ]
    assert [r["verdict"] for r in found["rows"]] == [
        "q: better",
        "exact: no difference",
        "judge: 6 wins",
    ]
