"""What every report format shows, as plain tables built once from a :class:`SuiteReport`.

The HTML, Markdown and Excel renderers lay these tables out; none of them computes its own.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from elspeth.outcome import RunStatus
from elspeth.reports._marking import MARKINGS
from elspeth.security import ClearancePlan, SecurityLevel
from elspeth.sinks import ComparisonReport, ExperimentReport, SuiteReport

TABLE_ROWS: Final = 200
"""Rows a report shows of one aggregate, comparison or plan table; it says when there are more."""
VERDICT_COLUMN: Final = "verdict"
SUMMARY_COLUMNS: Final = (
    "experiment",
    "baseline",
    "model",
    "prompt_pack",
    "rows",
    "answers",
    "errors",
    "cost",
    "tokens",
    "partial",
    "early_stopped",
    "stop_reason",
)
PLAN_COLUMNS: Final = ("component", "kind", "clearance", "incoming", "outgoing", "allowed")
COMPARISON_KEY_COLUMNS: Final = ("comparison", "baseline", "variant")


@dataclass(frozen=True)
class AggregateTable:
    """One aggregator instance's frame for one experiment."""

    experiment: str
    aggregator: str
    data: pd.DataFrame


@dataclass(frozen=True)
class ReportContent:
    """The tables of one report, each computed once."""

    level: SecurityLevel
    status: RunStatus
    facts: tuple[tuple[str, str], ...]
    experiments: tuple[ExperimentReport, ...]
    criteria: tuple[str, ...]
    summary: pd.DataFrame
    results: Mapping[str, pd.DataFrame]
    graded: Mapping[str, pd.DataFrame]
    """Experiment -> its :func:`graded_answers`, for the experiments whose rows were graded."""
    aggregates: tuple[AggregateTable, ...]
    comparisons: tuple[ComparisonReport, ...]
    plan: pd.DataFrame

    @property
    def banner(self) -> str:
        """What the top and bottom banner of every format say: the level and the run status."""
        return f"{MARKINGS[self.level].text} · Run status: {self.status.value}"

    @property
    def result_rows(self) -> int:
        """How many result rows the report represents, over every experiment."""
        return sum(len(data) for data in self.results.values())


def report_content(report: SuiteReport, level: SecurityLevel) -> ReportContent:
    """The tables of ``report``, marked at ``level`` (the level its release check found)."""
    results = {experiment.name: experiment.results_data() for experiment in report.experiments}
    graded = {
        experiment.name: graded_answers(results[experiment.name], experiment.references)
        for experiment in report.experiments
    }
    return ReportContent(
        level=level,
        status=report.status,
        facts=(
            ("suite", report.suite),
            ("description", report.description),
            ("run id", report.run_id),
            ("status", report.status.value),
            ("created", report.created_at),
            ("classification", level.name),
            ("baseline", report.baseline.name),
            ("experiments", str(len(report.experiments))),
            ("result rows", str(sum(len(data) for data in results.values()))),
        ),
        experiments=report.experiments,
        criteria=tuple(
            dict.fromkeys(c for experiment in report.experiments for c in experiment.criteria)
        ),
        summary=_summary_table(report),
        results=results,
        graded={name: data for name, data in graded.items() if data is not None},
        aggregates=tuple(
            AggregateTable(experiment.name, aggregator, frame.data)
            for experiment in report.experiments
            for aggregator, frame in experiment.aggregates.items()
        ),
        comparisons=report.comparisons,
        plan=plan_table(report.plan),
    )


GRADE_SUFFIXES: Final = ("_grade", "_value", "_outcome", "_explanation")


def graded_answers(data: pd.DataFrame, references: Sequence[str]) -> pd.DataFrame | None:
    """The columns a reader checks an answer by: the row, the references, each answer, and
    each scorer's or judge's grade, value, outcome and explanation (the judge's reasoning).
    ``None`` when nothing graded the rows."""
    columns = [str(column) for column in data.columns]
    graders = [
        column.removesuffix("_outcome")
        for column in columns
        if column.endswith("_outcome")
        and f"{column.removesuffix('_outcome')}_explanation" in columns
    ]
    if not graders:
        return None
    chosen: list[str] = [c for c in ("_row", "_repeat") if c in columns]
    chosen += [c for c in references if c in columns]
    chosen += [c for c in columns if c.endswith("_response")]
    chosen += [
        f"{g}{suffix}" for g in graders for suffix in GRADE_SUFFIXES if f"{g}{suffix}" in columns
    ]
    return data[list(dict.fromkeys(chosen))]


def _summary_table(report: SuiteReport) -> pd.DataFrame:
    rows = []
    for experiment in report.experiments:
        summary = experiment.summary
        token_counts = [
            summary[key]
            for key in ("prompt_tokens", "completion_tokens")
            if not is_missing(summary.get(key))
        ]
        rows.append(
            {
                "experiment": experiment.name,
                "baseline": experiment.baseline,
                "model": experiment.model,
                "prompt_pack": experiment.prompt_pack,
                "rows": summary.get("rows"),
                "answers": summary.get("answers"),
                "errors": summary.get("errors"),
                "cost": decimal_cost(summary.get("cost")),
                "tokens": sum(token_counts) if token_counts else None,
                "partial": summary.get("partial"),
                "early_stopped": summary.get("early_stopped"),
                "stop_reason": summary.get("stop_reason"),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS), dtype=object)


def decimal_cost(cost: Any) -> decimal.Decimal | None:
    """The summary's cost (a decimal string) as a number; ``None`` when absent or unreadable."""
    if is_missing(cost):
        return None
    try:
        value = decimal.Decimal(str(cost))
    except decimal.InvalidOperation:
        return None
    return value if value.is_finite() else None


def plan_table(plan: ClearancePlan) -> pd.DataFrame:
    """Every component with its clearance and the levels that reach it and leave it."""
    return pd.DataFrame(
        [entry.as_record() for entry in plan.entries], columns=list(PLAN_COLUMNS), dtype=object
    )


def comparisons_table(comparisons: tuple[ComparisonReport, ...]) -> pd.DataFrame:
    """Every comparison frame in one table, each row keyed by comparison, baseline and variant."""
    parts = [
        pd.concat(
            [
                pd.DataFrame(
                    {
                        "comparison": comparison.comparison,
                        "baseline": comparison.baseline,
                        "variant": comparison.variant,
                    },
                    index=comparison.frame.data.index,
                    dtype=object,
                ),
                comparison.frame.data.drop(
                    columns=[c for c in COMPARISON_KEY_COLUMNS if c in comparison.frame.data]
                ),
            ],
            axis=1,
        )
        for comparison in comparisons
    ]
    if not parts:
        return pd.DataFrame(columns=list(COMPARISON_KEY_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def verdicts(data: pd.DataFrame) -> tuple[str, ...]:
    """The plain verdict lines of a comparison frame, when it has a ``verdict`` column."""
    if VERDICT_COLUMN not in data:
        return ()
    return tuple(str(value) for value in data[VERDICT_COLUMN] if not is_missing(value))


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas' NA; False for anything else, containers included."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def is_number(value: Any) -> bool:
    """A real number (not a boolean), as Python, numpy or :class:`decimal.Decimal`."""
    return isinstance(value, int | float | decimal.Decimal | np.integer | np.floating) and not (
        isinstance(value, bool | np.bool_)
    )


def display_text(value: Any) -> str:
    """A cell as text for people: empty when missing, integers without ``.0``, six significant
    digits otherwise, ISO dates, yes/no for booleans."""
    if is_missing(value):
        return ""
    for kinds, render in _DISPLAY:
        if isinstance(value, kinds):
            return render(value)
    return str(value)


def _float_text(value: float | np.floating[Any]) -> str:
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.6g}"


_DISPLAY: Final[tuple[tuple[tuple[type, ...], Callable[[Any], str]], ...]] = (
    ((bool, np.bool_), lambda value: "yes" if value else "no"),
    ((float, np.floating), _float_text),
    ((np.integer,), lambda value: str(int(value))),
    ((dt.date, dt.time), lambda value: value.isoformat()),
)
"""Type → how a cell of that type reads; anything else reads as ``str(value)``."""
