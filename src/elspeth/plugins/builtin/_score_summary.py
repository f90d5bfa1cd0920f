"""``score_summary``: per LLM criterion, how many answers, how good, how costly, how slow.

The suite runner's rows carry, per criterion ``<c>``: ``<c>_outcome`` (``error`` is an
infrastructure failure: no usable answer), the score a row plugin extracted, and optional metrics
``<c>_prompt_tokens``, ``<c>_completion_tokens``, ``<c>_cost`` and ``<c>_latency_ms``. An ERROR
(no answer) is kept apart from a FAIL (an answer that does not reach the threshold or has no
readable score): the first is the infrastructure's doing, the second the model's.

``outcomes`` name scorer outputs (``answer_scorer``, a judge) whose ``<name>_outcome`` is
``pass``, ``fail`` or ``error``: per name, the counts and the pass rate (accuracy) ``pass /
(pass + fail)`` with its Wilson score interval. An ``error`` is reported, never counted as a pass
or a fail; any other value (a null included) is refused, so no row is silently left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import (
    ERROR_OUTCOME,
    OUTCOME_SUFFIX,
    as_column_list,
    distinct_names,
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

OUTCOME_SUMMARY_COLUMNS: Final = ("pass_rate_ci_low", "pass_rate_ci_high", "pass_rate_ci_reason")
"""Appended to :data:`SUMMARY_COLUMNS` when ``outcomes`` are given (so a criteria-only summary
keeps its columns): the Wilson interval of an outcome row's ``pass_rate``, or why there is none.
Null on criterion rows."""
OUTCOME_NULLABLE_DTYPES: Final = {
    "scored": "Int64",
    "pass_rate_ci_low": "Float64",
    "pass_rate_ci_high": "Float64",
}
"""With outcome rows, ``scored`` is null on them (they read no score column)."""

PASSED: Final = "pass"
FAILED: Final = "fail"
SCORER_OUTCOMES: Final = frozenset({PASSED, FAILED, ERROR_OUTCOME})
"""The values of a scorer's ``<name>_outcome`` (``answer_scorer``, a model-graded judge)."""


class OutcomeParameters(CriteriaParameters):
    """``criteria`` and/or ``outcomes``: scorer output prefixes whose ``<name>_outcome`` column
    (``pass``, ``fail`` or ``error``) is read. At least one of the two is required."""

    criteria: list[Annotated[str, pydantic.Field(min_length=1)]] = pydantic.Field(
        default_factory=list, description="LLM criteria of the suite runner, e.g. 'clarity'"
    )
    outcomes: list[Annotated[str, pydantic.Field(min_length=1)]] = pydantic.Field(
        default_factory=list,
        description="scorer outputs whose <name>_outcome is pass, fail or error, e.g. 'exact'",
    )

    _outcome_list = pydantic.field_validator("outcomes", mode="before")(as_column_list)

    @pydantic.field_validator("outcomes")
    @classmethod
    def _distinct_outcomes(cls, names: list[str]) -> list[str]:
        return distinct_names(names, "outcomes")

    @pydantic.model_validator(mode="after")
    def _something_to_read(self) -> OutcomeParameters:
        if not self.criteria and not self.outcomes:
            raise ValueError("criteria or outcomes: give at least one name")
        return self

    @property
    def outcome_columns(self) -> list[str]:
        return [name + OUTCOME_SUFFIX for name in self.outcomes]


class ScoreSummaryParameters(OutcomeParameters):
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
        # A name may be both a criterion and an outcome (both read its ``_outcome``): once.
        required = list(dict.fromkeys([*required, *parameters.outcome_columns]))
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
    """The summary frame: a row per criterion, :data:`SUMMARY_COLUMNS` in order; then, when
    ``outcomes`` are given, a row per outcome and :data:`OUTCOME_SUMMARY_COLUMNS` after them."""
    import pandas as pd

    rows = [summarise_criterion(data, criterion, parameters) for criterion in parameters.criteria]
    if not parameters.outcomes:
        return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).astype(NULLABLE_DTYPES)
    rows += [summarise_outcome(data, name, parameters.confidence) for name in parameters.outcomes]
    columns = [*SUMMARY_COLUMNS, *OUTCOME_SUMMARY_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns).astype(NULLABLE_DTYPES | OUTCOME_NULLABLE_DTYPES)
    # Text with None where there is no reason, whatever the rows hold (not NaN, not "str").
    reasons = frame["pass_rate_ci_reason"]
    frame["pass_rate_ci_reason"] = reasons.astype(object).where(reasons.notna(), None)
    return frame


def summarise_outcome(data: pd.DataFrame, name: str, confidence: float) -> dict[str, Any]:
    """One outcome's row: ``passed``, ``failed``, ``errors``; ``answered`` is ``passed +
    failed`` and ``pass_rate`` (the accuracy) is over it, so an error is never a pass or a fail.
    Columns about scores, thresholds and metrics are left null (NaN for the float ones)."""
    counts = outcome_counts(data[name + OUTCOME_SUFFIX], name + OUTCOME_SUFFIX)
    passed, failed, errors = (counts[o] for o in (PASSED, FAILED, ERROR_OUTCOME))
    rows, answered = passed + failed + errors, passed + failed
    low, high = wilson_interval(passed, failed, confidence)
    return {
        "criterion": name,
        "rows": rows,
        "answered": answered,
        "errors": errors,
        "error_rate": errors / rows if rows else math.nan,
        "scored": None,
        **dict.fromkeys(("mean", "std", "median", "ci_low", "ci_high"), math.nan),
        "confidence": confidence,
        "passed": passed,
        "failed": failed,
        "pass_rate": passed / answered if answered else None,
        "pass_rate_ci_low": None if math.isnan(low) else low,
        "pass_rate_ci_high": None if math.isnan(high) else high,
        "pass_rate_ci_reason": None if answered else f"no pass or fail outcome ({errors} errors)",
    }


def outcome_counts(outcomes: pd.Series[Any], column: str) -> dict[str, int]:
    """How many rows of ``outcomes`` are ``pass``, ``fail`` and ``error``. Any other value (a
    null, an LLM criterion's ``ok``) is a ValueError naming the column and how many, not the
    values (they may be secret): counting it as either side, or dropping it, would bias the
    rate without a trace."""
    known = outcomes.isin(SCORER_OUTCOMES)
    if not known.all():
        raise ValueError(
            f"{column}: {int((~known).sum())} value(s) are not {PASSED!r}, "
            f"{FAILED!r} or {ERROR_OUTCOME!r} (a null counts as neither)"
        )
    found = outcomes.value_counts()
    return {outcome: int(found.get(outcome, 0)) for outcome in SCORER_OUTCOMES}


def wilson_interval(passed: int, failed: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of ``passed / (passed + failed)`` (scipy's ``binomtest``
    ``proportion_ci(method="wilson")``, without continuity correction); NaN without trials. Unlike
    the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at 0/n or
    n/n, where an accuracy of 0% or 100% is most in need of an interval."""
    from scipy import stats

    trials = passed + failed
    if not trials:
        return math.nan, math.nan
    interval = stats.binomtest(passed, trials).proportion_ci(confidence, method="wilson")
    # Clamped: at 0/n and n/n the formula's end is 0 or 1 up to rounding.
    return max(0.0, float(interval.low)), min(1.0, float(interval.high))


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
