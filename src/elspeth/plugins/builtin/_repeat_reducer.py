"""``repeat_reducer``: one row per ``_row`` out of the ``repeats`` the model gave for it.

An experiment with ``repeats: k`` has one row per (``_row``, ``_repeat``). Scores are judged per
prompt, not per sample, so this aggregator reduces each row's repeats to one value and outcome per
configured source: a scorer prefix (``<p>_value`` and ``<p>_outcome``, as ``answer_scorer``
writes them) or a plain numeric value column. Error repeats (outcome ``error``, or no value where
one is needed) are excluded from the reduction and counted: an error is the infrastructure's doing
(or an unscorable answer), and folding it into a FAIL would hide it. See docs/plugins.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import ERROR_OUTCOME, numeric, require_columns
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import pandas as pd

ReducerName = Literal["mean", "mode", "max", "pass_at_k", "at_least_k"]

ROW: Final = "_row"
REPEAT: Final = "_repeat"
PASSED: Final = "pass"
FAILED: Final = "fail"
OUTCOMES: Final = frozenset({PASSED, FAILED, ERROR_OUTCOME})
"""The outcomes a scorer prefix may carry (``answer_scorer``'s); anything else is refused, since
guessing whether an unknown label passes would decide the result silently."""

WITH_K: Final = frozenset({"pass_at_k", "at_least_k"})
"""Reducers that take ``k``; every other reducer refuses it rather than ignoring it."""
NEEDS_VERDICT: Final = WITH_K
"""Reducers defined only over pass/fail repeats: a value column needs ``pass_threshold``."""
NEEDS_VALUE: Final = frozenset({"mean", "mode", "max"})
"""Reducers that read a prefix's ``_value``: a repeat without one is excluded as an error."""

OUTPUT_DTYPES: Final = {
    "_value": "Float64",
    "_outcome": "object",
    "_explanation": "object",
    "_repeats": "Int64",
    "_used": "Int64",
    "_errors": "Int64",
    "_passed": "Int64",
}
"""Suffix of each output column of a reduction -> its dtype (nullable: null means undefined)."""


class Reduction(pydantic.BaseModel):
    """One source (``prefix`` or ``column``, exactly one), its ``reducer`` and the reducer's
    options; ``output`` (default the source's name) prefixes the columns written."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    prefix: str | None = pydantic.Field(
        default=None, min_length=1, description="scorer prefix: reads <prefix>_value/_outcome"
    )
    column: str | None = pydantic.Field(
        default=None, min_length=1, description="a numeric value column; null is an error"
    )
    reducer: ReducerName
    k: int | None = pydantic.Field(
        default=None, ge=1, description="pass_at_k and at_least_k only: the k"
    )
    pass_threshold: float | None = pydantic.Field(
        default=None,
        allow_inf_nan=False,
        description="value columns only: a value >= this passes",
    )
    output: str = pydantic.Field(min_length=1, description="prefix of the columns written")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _one_source_and_default_output(cls, data: Any) -> Any:
        # Checked before the fields, so a missing source is not reported as a missing output;
        # the output is defaulted here (not in the field) so resolved parameters validate again.
        if not isinstance(data, dict):
            return data
        sources = [data[key] for key in ("prefix", "column") if data.get(key) is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of prefix (a scorer's) and column (a value column)")
        if data.get("output") is None and isinstance(sources[0], str):
            return {**data, "output": sources[0]}
        return data

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Reduction:
        if self.reducer in WITH_K and self.k is None:
            raise ValueError(f"the {self.reducer} reducer requires k")
        if self.reducer not in WITH_K and self.k is not None:
            raise ValueError(f"k is used only by pass_at_k and at_least_k, not by {self.reducer}")
        if self.prefix is not None and self.pass_threshold is not None:
            raise ValueError(
                f"pass_threshold applies only to a value column: prefix {self.prefix!r} "
                "has its own outcomes"
            )
        if (
            self.column is not None
            and self.pass_threshold is None
            and self.reducer in NEEDS_VERDICT
        ):
            raise ValueError(
                f"the {self.reducer} reducer on column {self.column!r} requires pass_threshold"
            )
        return self

    @property
    def source(self) -> str:
        return self.prefix if self.prefix is not None else str(self.column)

    @property
    def has_verdicts(self) -> bool:
        """Whether each repeat is judged pass or fail: a prefix's outcomes, or a threshold."""
        return self.prefix is not None or self.pass_threshold is not None

    @property
    def output_columns(self) -> list[str]:
        return [self.output + suffix for suffix in OUTPUT_DTYPES]


class RepeatReducerParameters(pydantic.BaseModel):
    """``reductions``: one entry per reduced source; their output columns must not collide."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    reductions: list[Reduction] = pydantic.Field(min_length=1, description="what to reduce")

    @pydantic.field_validator("reductions")
    @classmethod
    def _distinct_outputs(cls, reductions: list[Reduction]) -> list[Reduction]:
        seen: dict[str, int] = {}
        for index, reduction in enumerate(reductions):
            for column in reduction.output_columns:
                if column in seen:
                    raise ValueError(
                        f"reductions {seen[column]} and {index} both write {column!r}; "
                        "set output on one of them"
                    )
                seen[column] = index
        return reductions


@dataclass(frozen=True, slots=True)
class RepeatScore:
    """One usable (non-error) repeat: its value (if the source has one) and verdict (if any)."""

    value: float | None
    passed: bool | None


@dataclass(frozen=True, slots=True)
class Reduced:
    """One row's reduction; ``value``/``outcome``/``passed`` are None where undefined."""

    value: float | None
    outcome: str | None
    explanation: str
    repeats: int
    used: int
    errors: int
    passed: int | None


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained
    on Code"): ``1 - C(n - c, k) / C(n, k)``, the chance that k of the n samples drawn without
    replacement include a pass. Exact in rationals (``math.comb`` is 0 when ``n - c < k``, which
    gives 1.0), so no cancellation error for large n."""
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n, not n={n}, c={c}, k={k}")
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def mode_value(values: Sequence[float]) -> float:
    """The most frequent value (compared exactly); a tie goes to the smallest, so the result does
    not depend on the order the repeats arrived in and never flatters the model."""
    counts = Counter(values)
    top = max(counts.values())
    return min(value for value, count in counts.items() if count == top)


def mode_outcome(passes: int, fails: int) -> str:
    """The majority verdict; a tie is FAIL: a split vote is no majority for passing."""
    return PASSED if passes > fails else FAILED


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def reduce_repeats(reduction: Reduction, scores: Sequence[RepeatScore | None]) -> Reduced:
    """Reduce one row's repeats (``None`` is an error repeat) with ``reduction``'s reducer."""
    used = [score for score in scores if score is not None]
    errors = len(scores) - len(used)
    passed = sum(bool(s.passed) for s in used) if reduction.has_verdicts else None
    value: float | None
    outcome: str | None
    if not used:
        # Nothing to reduce: an ERROR, never a FAIL (no repeat was judged to fall short).
        value, outcome, why = None, ERROR_OUTCOME, f"all {_plural(errors, 'repeat')} are errors"
    elif reduction.k is None:
        value, outcome, why = _reduce_values(reduction, used, passed)
    else:
        if passed is None:  # the parameters model requires a verdict of every k reducer
            raise AssertionError(f"{reduction.reducer} without verdicts")
        value, outcome, why = _reduce_passes(
            reduction.reducer, reduction.k, len(used), passed, errors
        )
    if used and errors and outcome != ERROR_OUTCOME:
        why += f"; {_plural(errors, 'error repeat')} excluded"
    return Reduced(value, outcome, why, len(scores), len(used), errors, passed)


_Verdict = tuple[float | None, str | None, str]
"""A reduction's value, outcome and explanation."""


def _reduce_values(
    reduction: Reduction, used: Sequence[RepeatScore], passed: int | None
) -> _Verdict:
    """``mean``, ``max`` and ``mode`` over the usable repeats' values (at least one)."""
    n = len(used)
    values = [score.value for score in used if score.value is not None]
    if reduction.reducer == "mean":
        value = math.fsum(values) / len(values)
        return value, _judged(reduction, value), f"mean of {_plural(n, 'repeat')}"
    if reduction.reducer == "max":
        # "Best of n": a pass if any repeat passed (for a value column: max >= threshold).
        outcome = None if passed is None else (PASSED if passed else FAILED)
        return max(values), outcome, f"max of {_plural(n, 'repeat')}"
    if passed is None:
        return mode_value(values), None, f"mode of {_plural(n, 'repeat')}"
    return (
        mode_value(values),
        mode_outcome(passed, n - passed),
        f"mode of {_plural(n, 'repeat')}: {passed} pass, {n - passed} fail",
    )


def _reduce_passes(reducer: str, k: int, n: int, passed: int, errors: int) -> _Verdict:
    """``pass_at_k`` and ``at_least_k`` over ``n`` usable repeats (at least one), ``passed`` of
    which passed, with ``errors`` error repeats beside them."""
    if reducer == "pass_at_k":
        if n < k:
            # The estimator is undefined below k samples; errors took this row below k.
            return (
                None,
                ERROR_OUTCOME,
                f"only {_plural(n, 'usable repeat')} ({_plural(errors, 'error')}), "
                f"pass@{k} needs {k}",
            )
        return (
            pass_at_k(n, passed, k),
            None,
            f"pass@{k} over {_plural(n, 'repeat')}, {passed} passed",
        )
    # at_least_k: decided only when the error repeats could not have changed the verdict.
    tally = f"{passed} of {_plural(n, 'repeat')} passed, {k} needed"
    if passed >= k:
        return 1.0, PASSED, tally
    if passed + errors < k:
        return 0.0, FAILED, tally
    return None, ERROR_OUTCOME, f"{tally}; undecided with {_plural(errors, 'error repeat')}"


def _judged(reduction: Reduction, value: float) -> str | None:
    """A reduced value's verdict against a value column's threshold; none for a prefix, whose
    scorer's pass rule is not known here (a mean of outcomes is not itself an outcome)."""
    if reduction.pass_threshold is None:
        return None
    return PASSED if value >= reduction.pass_threshold else FAILED


def repeat_scores(data: pd.DataFrame, reduction: Reduction) -> list[RepeatScore | None]:
    """Each frame row as a usable repeat, or None for an error repeat. Raises on a missing column
    or on outcome labels a scorer does not write (naming the column, never a cell)."""
    if reduction.prefix is None:
        column = str(reduction.column)
        require_columns(data, [column], "repeat_reducer")
        threshold = reduction.pass_threshold
        return [
            None
            if math.isnan(value)
            else RepeatScore(value, None if threshold is None else value >= threshold)
            for value in numeric(data[column]).tolist()
        ]
    outcome_column = reduction.prefix + "_outcome"
    value_column = reduction.prefix + "_value"
    needs_value = reduction.reducer in NEEDS_VALUE
    require_columns(
        data, [outcome_column, *([value_column] if needs_value else [])], "repeat_reducer"
    )
    outcomes = data[outcome_column]
    unknown = outcomes.notna() & ~outcomes.isin(list(OUTCOMES))
    if unknown.any():
        raise ValueError(
            f"repeat_reducer column {outcome_column!r} has {int(unknown.sum())} outcome(s) "
            f"other than {sorted(OUTCOMES)}"
        )
    values = numeric(data[value_column]).tolist() if needs_value else [math.nan] * len(data)
    scores: list[RepeatScore | None] = []
    for outcome, value in zip(outcomes.tolist(), values, strict=True):
        # A null outcome or (for a value reducer) a missing value gives nothing to reduce: an
        # error repeat, counted as such rather than dropped or read as a FAILED.
        if (
            not isinstance(outcome, str)
            or outcome == ERROR_OUTCOME
            or (needs_value and math.isnan(value))
        ):
            scores.append(None)
        else:
            scores.append(RepeatScore(None if math.isnan(value) else value, outcome == PASSED))
    return scores


def reduce_frame(data: pd.DataFrame, parameters: RepeatReducerParameters) -> pd.DataFrame:
    """One row per ``_row`` (ascending): ``_row`` then each reduction's output columns.

    Without ``_repeat`` (``repeats: 1``) every row is its own single repeat, so the reduction is
    over one repeat per row; ``k`` above 1 is then refused like any ``k`` above the repeats.
    """
    import pandas as pd

    require_columns(data, [ROW], "repeat_reducer")
    keys = [ROW, REPEAT] if REPEAT in data else [ROW]
    for key in keys:
        if data[key].isna().any():
            raise ValueError(f"repeat_reducer: {key} has null cells")
    duplicated = int(data.duplicated(keys).sum())
    if duplicated:
        # Two rows for one (row, repeat) would be counted twice: the same chunk given twice.
        raise ValueError(f"repeat_reducer: {duplicated} row(s) repeat a {'/'.join(keys)} key")
    data = data.sort_values(keys, kind="stable").reset_index(drop=True)
    positions = data.groupby(ROW, sort=True).indices
    rows: list[Any] = data[ROW].drop_duplicates().tolist()  # ascending: sorted above
    most = max((len(p) for p in positions.values()), default=0)
    for index, reduction in enumerate(parameters.reductions):
        if rows and reduction.k is not None and reduction.k > most:
            raise ValueError(
                f"repeat_reducer reductions {index} ({reduction.reducer} of "
                f"{reduction.source!r}): k={reduction.k} but no row has more than "
                f"{_plural(most, 'repeat')}"
            )
    columns: dict[str, Any] = {ROW: pd.Series(rows, dtype="int64")}
    for reduction in parameters.reductions:
        scores = repeat_scores(data, reduction)
        reduced = [reduce_repeats(reduction, [scores[i] for i in positions[row]]) for row in rows]
        for suffix, dtype in OUTPUT_DTYPES.items():
            field = suffix.removeprefix("_")
            columns[reduction.output + suffix] = pd.Series(
                [getattr(r, field) for r in reduced], dtype=dtype
            )
    return pd.DataFrame(columns)


class RepeatReducer(Plugin):
    """One frame over every chunk of an experiment: a row per ``_row``, its repeats reduced."""

    name = "repeat_reducer"
    kind = PluginKind.AGGREGATOR
    clearance = SecurityLevel.SECRET
    Parameters = RepeatReducerParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import pandas as pd

        parameters: RepeatReducerParameters = self.parameters  # type: ignore[assignment]
        views = [proxy.get_view() for proxy in proxies]
        with_repeat = {REPEAT in view.data for view in views}
        if len(with_repeat) > 1:
            # Mixing would turn the missing repeats into nulls: the chunks are of two experiments.
            raise ValueError(f"repeat_reducer: some chunks have {REPEAT} and some do not")
        data = pd.concat([view.data for view in views], ignore_index=True)
        proxies[0].replace_data(reduce_frame(data, parameters), views[0].version)
