"""``score_comparison``: is the variant better than the baseline, by how much, and how sure?

Per LLM criterion, over the baseline's frame and the variant's (in that order):

* the difference of mean scores (variant - baseline) and Welch's confidence interval for it;
* a two-sided test of the two samples, named in ``test``: Welch's t or Mann-Whitney U;
* Cliff's delta, from the Mann-Whitney U of the variant, with Romano et al.'s magnitude labels;
* when rows pair up by ``key`` (the runner's ``_row``): the paired mean difference, its paired t
  interval and a paired test (paired t or Wilcoxon signed-rank). Repeats collapse to their mean
  per key first;
* ``significant`` (p below ``alpha``, from the paired test when at least two rows pair, else from
  the independent test) and a one-sentence ``verdict``.

``test: auto`` chooses rank-based tests (Mann-Whitney U; Wilcoxon when paired) when either sample
has at most :data:`ORDINAL_MAX_DISTINCT` distinct values (ratings such as 1-5 are ordinal) or
fewer than :data:`SMALL_SAMPLE_BELOW` values (too few to lean on the t test's normality), and
Welch's t (paired t) otherwise. For the paired choice the samples are the per-key means.

Every statistic comes from scipy. What cannot be answered is NaN, with the reason in the verdict:
fewer than two scores on a side (or pairs), no variation at all (every score equal, every paired
difference zero), or a t test without spread (both samples constant, or a constant paired
difference). Equality is up to rounding (:data:`~._criteria.RELATIVE_TOLERANCE`), decided here
before scipy is called: scipy would see a tiny spread in rounding noise and report t = 1e15.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._columns import (
    as_column_list,
    distinct_names,
    numeric,
    require_columns,
)
from elspeth.plugins.builtin._criteria import (
    CriteriaParameters,
    all_equal,
    degenerate_samples_allowed,
)
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    Scores = npt.NDArray[np.float64]

COMPARISON_COLUMNS: Final = (
    "criterion",
    "baseline_count",
    "baseline_mean",
    "variant_count",
    "variant_mean",
    "difference",
    "ci_low",
    "ci_high",
    "confidence",
    "test",
    "statistic",
    "p_value",
    "cliffs_delta",
    "effect_magnitude",
    "paired_rows",
    "paired_test",
    "paired_mean_difference",
    "paired_ci_low",
    "paired_ci_high",
    "paired_p_value",
    "significant",
    "verdict",
)

NULLABLE_DTYPES: Final = {
    "paired_mean_difference": "Float64",
    "paired_ci_low": "Float64",
    "paired_ci_high": "Float64",
    "paired_p_value": "Float64",
    "significant": "boolean",
}
"""Comparison columns that are null (not NaN) when there is nothing to report."""

IndependentTest = Literal["welch_t", "mann_whitney_u"]
RequestedTest = Literal["auto", IndependentTest]

ORDINAL_MAX_DISTINCT: Final = 10
"""``auto``: a sample with at most this many distinct values is treated as ordinal."""
SMALL_SAMPLE_BELOW: Final = 30
"""``auto``: a sample with fewer values than this is too small for a t test."""
MIN_PER_SIDE: Final = 2
"""Scores needed on each side (or pairs) before anything is tested."""

SCIPY_TESTS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "welch_t": ("ttest_ind", {"equal_var": False}),
    "mann_whitney_u": ("mannwhitneyu", {}),
    "paired_t": ("ttest_rel", {}),
    "wilcoxon": ("wilcoxon", {}),
}
"""Test name -> (``scipy.stats`` function, keyword arguments); every test is called as
``function(variant, baseline, alternative="two-sided", ...)``."""

PAIRED_COUNTERPART: Final[dict[str, str]] = {"welch_t": "paired_t", "mann_whitney_u": "wilcoxon"}
TEST_LABELS: Final = {
    "welch_t": "Welch t",
    "mann_whitney_u": "Mann-Whitney U",
    "paired_t": "paired t",
    "wilcoxon": "Wilcoxon signed-rank",
}

CLIFFS_DELTA_MAGNITUDES: Final = ((0.147, "negligible"), (0.33, "small"), (0.474, "medium"))
"""Upper bounds of ``|delta|`` per label (Romano et al., 2006); at or above the last: large."""
LARGE: Final = "large"


class ScoreComparisonParameters(CriteriaParameters):
    """Rows pair up by ``key``; ``alpha`` is the significance level of the two-sided tests."""

    key: list[str] = pydantic.Field(
        default_factory=lambda: ["_row"], min_length=1, description="columns that pair rows"
    )
    alpha: float = pydantic.Field(default=0.05, gt=0, lt=1, description="significance level")
    test: RequestedTest = "auto"
    higher_is_better: bool = True

    _key_list = pydantic.field_validator("key", mode="before")(as_column_list)

    @pydantic.field_validator("key")
    @classmethod
    def _distinct_key(cls, names: list[str]) -> list[str]:
        return distinct_names(names, "key")

    @pydantic.model_validator(mode="after")
    def _key_is_not_a_score(self) -> ScoreComparisonParameters:
        overlap = set(self.key) & set(self.score_columns)
        if overlap:
            raise ValueError(f"{sorted(overlap)} cannot be both a key and a score column")
        return self


@dataclass(frozen=True, slots=True)
class Analysis:
    """One design's answer (independent samples or pairs): the test used (None when there were
    too few values to try), the difference (variant - baseline) with its t interval, the test's
    statistic and p-value, and why they are NaN when they are."""

    test: str | None
    difference: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    undetermined: str | None


class ScoreComparison(Plugin):
    """Proxies: baseline first, variant second. The comparison is written through the first."""

    name = "score_comparison"
    kind = PluginKind.BASELINE_COMPARISON
    clearance = SecurityLevel.SECRET
    Parameters = ScoreComparisonParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        parameters: ScoreComparisonParameters = self.parameters  # type: ignore[assignment]
        baseline, variant = (proxy.get_view() for proxy in proxies)
        wanted = [*parameters.key, *parameters.score_columns]
        require_columns(baseline.data, wanted, "baseline")
        require_columns(variant.data, wanted, "variant")
        summary = compare_frames(baseline.data[wanted], variant.data[wanted], parameters)
        proxies[0].replace_data(summary, baseline.version)


def compare_frames(
    baseline: pd.DataFrame, variant: pd.DataFrame, parameters: ScoreComparisonParameters
) -> pd.DataFrame:
    """The comparison frame: a row per criterion, :data:`COMPARISON_COLUMNS` in order."""
    import pandas as pd

    columns = parameters.score_columns
    scores = {
        side: frame.assign(**{column: numeric(frame[column]) for column in columns})
        for side, frame in (("baseline", baseline), ("variant", variant))
    }
    per_key = {
        side: frame.groupby(list(parameters.key), dropna=True)[columns].mean()
        for side, frame in scores.items()
    }
    rows: list[dict[str, Any]] = []
    for criterion, column in zip(parameters.criteria, columns, strict=True):
        pairs = pd.concat(
            [per_key["baseline"][column], per_key["variant"][column]], axis=1, join="inner"
        ).dropna()
        rows.append(
            compare_criterion(
                criterion,
                scores["baseline"][column].dropna().to_numpy(dtype="float64"),
                scores["variant"][column].dropna().to_numpy(dtype="float64"),
                (
                    pairs.iloc[:, 0].to_numpy(dtype="float64"),
                    pairs.iloc[:, 1].to_numpy(dtype="float64"),
                ),
                parameters,
            )
        )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).astype(NULLABLE_DTYPES)


def compare_criterion(
    criterion: str,
    baseline: Scores,
    variant: Scores,
    pairs: tuple[Scores, Scores],
    parameters: ScoreComparisonParameters,
) -> dict[str, Any]:
    """One criterion's row from its scores on each side and its aligned per-key means."""
    independent = independent_analysis(baseline, variant, parameters)
    paired = paired_analysis(*pairs, parameters)
    delta = cliffs_delta(baseline, variant) if independent.test else math.nan
    deciding = paired if paired.test else independent
    significant = None if math.isnan(deciding.p_value) else deciding.p_value < parameters.alpha
    return {
        "criterion": criterion,
        "baseline_count": len(baseline),
        "baseline_mean": _mean(baseline),
        "variant_count": len(variant),
        "variant_mean": _mean(variant),
        "difference": independent.difference,
        "ci_low": independent.ci_low,
        "ci_high": independent.ci_high,
        "confidence": parameters.confidence,
        "test": independent.test,
        "statistic": independent.statistic,
        "p_value": independent.p_value,
        "cliffs_delta": delta,
        "effect_magnitude": effect_magnitude(delta),
        "paired_rows": len(pairs[0]),
        "paired_test": paired.test,
        "paired_mean_difference": paired.difference,
        "paired_ci_low": paired.ci_low,
        "paired_ci_high": paired.ci_high,
        "paired_p_value": paired.p_value,
        "significant": significant,
        "verdict": verdict(criterion, deciding, significant, delta, parameters),
    }


def choose_test(requested: RequestedTest, baseline: Scores, variant: Scores) -> IndependentTest:
    """The requested test, or for ``auto``: Mann-Whitney U when either sample looks ordinal or
    small (see :func:`looks_ordinal_or_small`), Welch's t otherwise."""
    if requested != "auto":
        return requested
    if looks_ordinal_or_small(baseline) or looks_ordinal_or_small(variant):
        return "mann_whitney_u"
    return "welch_t"


def looks_ordinal_or_small(sample: Scores) -> bool:
    """At most :data:`ORDINAL_MAX_DISTINCT` distinct values, or fewer than
    :data:`SMALL_SAMPLE_BELOW` values: a case for a rank-based test."""
    import numpy as np

    return len(sample) < SMALL_SAMPLE_BELOW or np.unique(sample).size <= ORDINAL_MAX_DISTINCT


def independent_analysis(
    baseline: Scores, variant: Scores, parameters: ScoreComparisonParameters
) -> Analysis:
    """The two samples as independent: Welch's interval and the chosen test."""
    import numpy as np

    difference = _mean(variant) - _mean(baseline)
    if min(len(baseline), len(variant)) < MIN_PER_SIDE:
        reason = (
            f"{len(baseline)} baseline and {len(variant)} variant scores; "
            f"each side needs at least {MIN_PER_SIDE}"
        )
        return _untested(difference, reason)
    same = all_equal(np.concatenate([baseline, variant]))
    return _analysis(
        variant,
        baseline,
        test=choose_test(parameters.test, baseline, variant),
        interval_test="welch_t",
        difference=difference,
        confidence=parameters.confidence,
        no_variation="every score is the same" if same else None,
        no_spread=all_equal(baseline) and all_equal(variant),
    )


def paired_analysis(
    baseline: Scores, variant: Scores, parameters: ScoreComparisonParameters
) -> Analysis:
    """Aligned per-key means as pairs: the paired t interval and the chosen paired test."""
    if len(baseline) < MIN_PER_SIDE:
        return _untested(math.nan, f"fewer than {MIN_PER_SIDE} paired rows")
    differences = variant - baseline
    zero = all_equal(differences, to=0.0)
    return _analysis(
        variant,
        baseline,
        test=PAIRED_COUNTERPART[choose_test(parameters.test, baseline, variant)],
        interval_test="paired_t",
        difference=float(differences.mean()),
        confidence=parameters.confidence,
        no_variation="every paired difference is zero" if zero else None,
        no_spread=all_equal(differences),
    )


def _analysis(
    variant: Scores,
    baseline: Scores,
    *,
    test: str,
    interval_test: str,
    difference: float,
    confidence: float,
    no_variation: str | None,
    no_spread: bool,
) -> Analysis:
    """Run ``test``, and take the interval from the design's t test ``interval_test``. Without
    spread the t interval is NaN, and so is the statistic if ``test`` is that t test."""
    low, high = (
        (math.nan, math.nan)
        if no_spread
        else _scipy_test(interval_test, variant, baseline).confidence_interval(confidence)
    )
    t_without_spread = no_spread and test == interval_test
    reason = no_variation or (
        f"no spread for the {TEST_LABELS[test]} test" if t_without_spread else None
    )
    if reason:
        return Analysis(test, difference, float(low), float(high), math.nan, math.nan, reason)
    result = _scipy_test(test, variant, baseline)
    return Analysis(
        test,
        difference,
        float(low),
        float(high),
        float(result.statistic),
        float(result.pvalue),
        None,
    )


def _untested(difference: float, reason: str) -> Analysis:
    return Analysis(None, difference, math.nan, math.nan, math.nan, math.nan, reason)


def _scipy_test(name: str, variant: Scores, baseline: Scores) -> Any:
    from scipy import stats

    function, keywords = SCIPY_TESTS[name]
    with degenerate_samples_allowed():
        return getattr(stats, function)(variant, baseline, alternative="two-sided", **keywords)


def cliffs_delta(baseline: Scores, variant: Scores) -> float:
    """P(variant > baseline) - P(variant < baseline) over every cross pair, from the variant's
    Mann-Whitney U (which counts ties half): ``2 U / (n_baseline n_variant) - 1``. Positive means
    the variant tends higher."""
    statistic = float(_scipy_test("mann_whitney_u", variant, baseline).statistic)
    return 2 * statistic / (len(baseline) * len(variant)) - 1


def effect_magnitude(delta: float) -> str | None:
    """Romano et al.'s label for ``|delta|``; None when delta is NaN."""
    if math.isnan(delta):
        return None
    return next((label for bound, label in CLIFFS_DELTA_MAGNITUDES if abs(delta) < bound), LARGE)


def verdict(
    criterion: str,
    deciding: Analysis,
    significant: bool | None,
    delta: float,
    parameters: ScoreComparisonParameters,
) -> str:
    """One plain sentence from the deciding analysis (paired when rows pair, else independent)."""
    if significant is None or deciding.test is None:
        return f"{criterion}: not enough data to compare ({deciding.undetermined})"
    details = (
        f"{parameters.confidence * 100:g}% CI {_signed(deciding.ci_low)} to "
        f"{_signed(deciding.ci_high)}; {TEST_LABELS[deciding.test]} {_p(deciding.p_value)}; "
        f"Cliff's delta {delta:.2f}, {effect_magnitude(delta)}"
    )
    difference = _signed(deciding.difference)
    if not significant:
        return f"{criterion}: no significant difference ({difference}, {details})"
    if deciding.difference == 0:
        direction = "different from"
    elif (deciding.difference > 0) == parameters.higher_is_better:
        direction = "better than"
    else:
        direction = "worse than"
    return f"{criterion}: variant {direction} baseline by {difference} ({details})"


def _signed(value: float) -> str:
    return f"{value:+.2f}" if math.isfinite(value) else "n/a"


def _p(value: float) -> str:
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def _mean(values: Scores) -> float:
    return float(values.mean()) if len(values) else math.nan


def _distinct_count(*samples: Scores) -> int:
    import numpy as np

    return int(np.unique(np.concatenate(samples)).size)
