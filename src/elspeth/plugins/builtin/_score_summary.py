"""``score_summary``: per LLM criterion, how many answers, how good, how costly, how slow.

The suite runner's rows carry, per criterion ``<c>``: ``<c>_outcome`` (``error`` is an
infrastructure failure: no usable answer), the score a row plugin extracted, and optional metrics
``<c>_prompt_tokens``, ``<c>_completion_tokens``, ``<c>_cost`` and ``<c>_latency_ms``. An ERROR
(no answer) is kept apart from a FAIL (an answer that does not reach the threshold or has no
readable score): the first is the infrastructure's doing, the second the model's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import (
    ERROR_OUTCOME,
    OUTCOME_SUFFIX,
    numeric,
    require_columns,
)
from elspeth.plugins.builtin._criteria import CriteriaParameters, all_equal
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_COLUMNS: Final = (
    "criterion",
    "rows",
    "answered",
    "errors",
    "error_rate",
    "scored",
    "mean",
    "std",
    "median",
    "ci_low",
    "ci_high",
    "confidence",
    "pass_threshold",
    "passed",
    "failed",
    "pass_rate",
    "prompt_tokens",
    "completion_tokens",
    "tokens_p50",
    "tokens_p95",
    "cost",
    "cost_p50",
    "cost_p95",
    "latency_p50_ms",
    "latency_p95_ms",
)

METRIC_SUFFIXES: Final = {
    "prompt_tokens": "_prompt_tokens",
    "completion_tokens": "_completion_tokens",
    "cost": "_cost",
    "latency_ms": "_latency_ms",
}
"""Optional metric -> suffix of its column; a metric whose column is absent is reported null."""

NULLABLE_DTYPES: Final = {
    "pass_threshold": "Float64",
    "passed": "Int64",
    "failed": "Int64",
    "pass_rate": "Float64",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "tokens_p50": "Float64",
    "tokens_p95": "Float64",
    "cost": "Float64",
    "cost_p50": "Float64",
    "cost_p95": "Float64",
    "latency_p50_ms": "Float64",
    "latency_p95_ms": "Float64",
}
"""Summary columns that are null (not NaN) when their input is absent or undefined."""

PERCENTILES: Final = (0.5, 0.95)


class ScoreSummaryParameters(CriteriaParameters):
    """``pass_threshold``: a score at or above it passes; none means no pass/fail columns."""

    pass_threshold: float | None = pydantic.Field(
        default=None, allow_inf_nan=False, description="a score >= this passes"
    )


class ScoreSummary(Plugin):
    """One summary frame over every chunk of an experiment: a row per criterion."""

    name = "score_summary"
    kind = PluginKind.AGGREGATOR
    clearance = SecurityLevel.SECRET
    Parameters = ScoreSummaryParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import pandas as pd

        parameters: ScoreSummaryParameters = self.parameters  # type: ignore[assignment]
        required = [
            column
            for criterion in parameters.criteria
            for column in (criterion + OUTCOME_SUFFIX, parameters.score_column_of(criterion))
        ]
        optional = [
            criterion + suffix
            for criterion in parameters.criteria
            for suffix in METRIC_SUFFIXES.values()
        ]
        views = [proxy.get_view() for proxy in proxies]
        for view in views:
            require_columns(view.data, required, "score_summary")
        data = pd.concat(
            [view.data[[*required, *(c for c in optional if c in view.data)]] for view in views],
            ignore_index=True,
        )
        proxies[0].replace_data(summarise_criteria(data, parameters), views[0].version)


def summarise_criteria(data: pd.DataFrame, parameters: ScoreSummaryParameters) -> pd.DataFrame:
    """The summary frame: a row per criterion, :data:`SUMMARY_COLUMNS` in order."""
    import pandas as pd

    rows = [summarise_criterion(data, criterion, parameters) for criterion in parameters.criteria]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).astype(NULLABLE_DTYPES)


def summarise_criterion(
    data: pd.DataFrame, criterion: str, parameters: ScoreSummaryParameters
) -> dict[str, Any]:
    """One criterion's row. Percentiles are over answered rows (what an answer takes); token and
    cost totals are over every row (what the experiment spent)."""
    errored = data[criterion + OUTCOME_SUFFIX].eq(ERROR_OUTCOME).fillna(False).astype(bool)
    answered = ~errored
    scores = numeric(data[parameters.score_column_of(criterion)])[answered].dropna()
    rows, errors = len(data), int(errored.sum())
    metrics = {
        name: numeric(data[criterion + suffix]) if criterion + suffix in data else None
        for name, suffix in METRIC_SUFFIXES.items()
    }
    prompt, completion = metrics["prompt_tokens"], metrics["completion_tokens"]
    tokens = None if prompt is None or completion is None else prompt + completion
    return {
        "criterion": criterion,
        "rows": rows,
        "answered": rows - errors,
        "errors": errors,
        "error_rate": errors / rows if rows else math.nan,
        "scored": len(scores),
        "mean": float(scores.mean()),
        "std": float(scores.std(ddof=1)),
        "median": float(scores.median()),
        **dict(
            zip(("ci_low", "ci_high"), mean_interval(scores, parameters.confidence), strict=True)
        ),
        "confidence": parameters.confidence,
        **pass_counts(scores, rows - errors, parameters.pass_threshold),
        "prompt_tokens": _total(prompt, int),
        "completion_tokens": _total(completion, int),
        **_percentiles("tokens", tokens, answered),
        "cost": _known_total(metrics["cost"]),
        **_percentiles("cost", metrics["cost"], answered),
        **_percentiles("latency", metrics["latency_ms"], answered, unit="_ms"),
    }


def mean_interval(scores: pd.Series[float], confidence: float) -> tuple[float, float]:
    """The t-based confidence interval of the mean (scipy's Student t with ``n - 1`` degrees of
    freedom around the mean, scaled by the standard error). NaN below two values and without
    spread: a t interval needs a standard error, and a sample that does not vary cannot estimate
    its own uncertainty."""
    from scipy import stats

    if len(scores) < 2 or all_equal(scores.to_numpy(dtype="float64")):
        return math.nan, math.nan
    low, high = stats.t.interval(
        confidence, len(scores) - 1, loc=float(scores.mean()), scale=float(stats.sem(scores))
    )
    return float(low), float(high)


def pass_counts(
    scores: pd.Series[float], answered: int, threshold: float | None
) -> dict[str, float | int | None]:
    """``passed`` (answered rows scored at or above ``threshold``), ``failed`` (every other
    answered row, including those without a readable score) and ``pass_rate`` (over answered
    rows). All null without a threshold."""
    if threshold is None:
        return {"pass_threshold": None, "passed": None, "failed": None, "pass_rate": None}
    passed = int((scores >= threshold).sum())
    return {
        "pass_threshold": threshold,
        "passed": passed,
        "failed": answered - passed,
        "pass_rate": passed / answered if answered else None,
    }


def _total(values: pd.Series[float] | None, kind: type[float] | type[int]) -> float | int | None:
    """The sum of the known values; null when the metric's column is absent."""
    return None if values is None else kind(values.sum())


def _known_total(values: pd.Series[float] | None) -> float | None:
    """The sum of the known costs; null when none is known (the column is absent, or the model
    has no price: an unknown cost is never reported as 0)."""
    return None if values is None or not values.notna().any() else float(values.sum())


def _percentiles(
    name: str, values: pd.Series[float] | None, answered: pd.Series[bool], unit: str = ""
) -> dict[str, float | None]:
    """p50 and p95 (linear interpolation) over the answered rows' known values; null when the
    column is absent or no answered row has a value."""
    keys = [f"{name}_p{round(q * 100)}{unit}" for q in PERCENTILES]
    known = values[answered].dropna() if values is not None else None
    if known is None or known.empty:
        return dict.fromkeys(keys)
    return dict(zip(keys, known.quantile(list(PERCENTILES)).tolist(), strict=True))
