"""``score_comparison``: is the variant better than the baseline, by how much, and how sure?

Per LLM criterion, over the baseline's frame and the variant's (in that order):

* the difference of mean scores (variant - baseline);
* a two-sided test of the two samples, named in ``test`` (Welch's t or Mann-Whitney U), with the
  confidence interval of that test's own estimate, named in ``interval_method``: Welch's interval
  of the difference of means, or the Hodges-Lehmann shift (the median of every variant-minus-
  baseline difference) with its distribution-free interval;
* Cliff's delta, from the Mann-Whitney U of the variant, with Romano et al.'s magnitude labels;
* when rows pair up by ``key`` (the runner's ``_row``): the paired mean difference, a paired test
  (paired t or Wilcoxon signed-rank) and the interval of its own estimate: the t interval of the
  mean paired difference, or the Hodges-Lehmann estimate (the median of the Walsh averages) with
  its distribution-free interval. Repeats collapse to their mean per key first;
* ``significant`` and a one-sentence ``verdict``, from the paired analysis when at least two rows
  pair, else from the independent one.

One method gives a verdict its interval. Each interval is the set of shifts its test does not
reject at ``alpha`` (so ``confidence`` is ``1 - alpha``), and ``significant`` is whether that
interval excludes 0, so the verdict and the interval beside it cannot disagree. The p-values are
scipy's. p < alpha exactly when the interval excludes 0 for the t tests (up to rounding at the
boundary), and for the rank tests whenever the test at 0 sees what it sees at other shifts: no
zero paired difference, no two opposite paired differences of equal size, no score on both
sides. Those ties and zeros exist at 0 alone and change the test there (scipy drops zero
differences and ranks ties together). When 0 is an end of the interval the test at 0 decides
whether that end belongs (:func:`_settled`); otherwise the interval decides, and the verdict says
where p disagrees.

``test: auto`` chooses rank-based tests (Mann-Whitney U; Wilcoxon when paired) when either sample
has at most :data:`ORDINAL_MAX_DISTINCT` distinct values (ratings such as 1-5 are ordinal) or
fewer than :data:`SMALL_SAMPLE_BELOW` values (too few to lean on the t test's normality), and
Welch's t (paired t) otherwise. For the paired choice the samples are the per-key means.

``outcomes`` name scorer outputs whose ``<name>_outcome`` is ``pass``, ``fail`` or ``error``
(``answer_scorer``, a model-graded judge): per name, a row after the criteria's with McNemar's
test of the paired outcomes (:func:`compare_outcome`). Repeats of a key collapse to their
majority outcome; a key whose repeats tie, or that is an error on either side, is left out and
counted.

What cannot be answered is NaN, with the reason in the verdict: fewer than two scores on a side
(or pairs), no variation at all (every score equal, every paired difference zero), or a t test
without spread (both samples constant, or a constant paired difference). Equality is up to
rounding (:data:`~._criteria.RELATIVE_TOLERANCE`), decided here before scipy is called: scipy
would see a tiny spread in rounding noise and report t = 1e15.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal

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
from elspeth.plugins.builtin._criteria import (
    all_equal,
    degenerate_samples_allowed,
)
from elspeth.plugins.builtin._score_summary import (
    FAILED,
    PASSED,
    OutcomeParameters,
    outcome_counts,
    wilson_interval,
)
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    Scores = npt.NDArray[np.float64]
    Indices = npt.NDArray[np.intp]

COMPARISON_COLUMNS: Final = (
    "criterion",
    "baseline_count",
    "baseline_mean",
    "variant_count",
    "variant_mean",
    "difference",
    "estimate",
    "ci_low",
    "ci_high",
    "confidence",
    "interval_method",
    "test",
    "statistic",
    "p_value",
    "cliffs_delta",
    "effect_magnitude",
    "paired_rows",
    "paired_test",
    "paired_mean_difference",
    "paired_estimate",
    "paired_ci_low",
    "paired_ci_high",
    "paired_interval_method",
    "paired_p_value",
    "significant",
    "verdict",
)

NULLABLE_DTYPES: Final = {
    "paired_mean_difference": "Float64",
    "paired_estimate": "Float64",
    "paired_ci_low": "Float64",
    "paired_ci_high": "Float64",
    "paired_p_value": "Float64",
    "significant": "boolean",
}
"""Comparison columns that are null (not NaN) when there is nothing to report."""

OUTCOME_COMPARISON_COLUMNS: Final = (
    "baseline_pass_rate",
    "baseline_pass_rate_ci_low",
    "baseline_pass_rate_ci_high",
    "variant_pass_rate",
    "variant_pass_rate_ci_low",
    "variant_pass_rate_ci_high",
    "pass_rate_difference",
    "both_passed",
    "baseline_only_passed",
    "variant_only_passed",
    "both_failed",
    "error_pairs",
    "tied_pairs",
)
"""Appended to :data:`COMPARISON_COLUMNS` when ``outcomes`` are given (so a criteria-only
comparison keeps its columns); null on criterion rows. An outcome row also fills ``criterion``,
``confidence``, ``paired_rows``, ``paired_test``, ``paired_p_value``, ``significant`` and
``verdict``, and leaves the other criterion columns null."""
OUTCOME_NULLABLE_DTYPES: Final = {
    "baseline_count": "Int64",
    "variant_count": "Int64",
    **dict.fromkeys(OUTCOME_COMPARISON_COLUMNS[:7], "Float64"),
    **dict.fromkeys(OUTCOME_COMPARISON_COLUMNS[7:], "Int64"),
}

MCNEMAR_EXACT_BELOW: Final = 25
"""McNemar: the exact binomial test below this many discordant pairs, where the chi-square
approximation is poor; chi-square with continuity correction from it on."""
MCNEMAR_EXACT: Final = "mcnemar_exact"
MCNEMAR_CHI2: Final = "mcnemar_chi2"
TIE: Final = "tie"
"""A key whose repeats on one side have as many passes as fails: no majority outcome."""

IndependentTest = Literal["welch_t", "mann_whitney_u"]
RequestedTest = Literal["auto", IndependentTest]

ORDINAL_MAX_DISTINCT: Final = 10
"""``auto``: a sample with at most this many distinct values is treated as ordinal."""
SMALL_SAMPLE_BELOW: Final = 30
"""``auto``: a sample with fewer values than this is too small for a t test."""
MIN_PER_SIDE: Final = 2
"""Scores needed on each side (or pairs) before anything is tested."""

EXACT_SIGNED_RANK_AT_MOST: Final = 50
"""Wilcoxon: the exact null distribution up to this many pairs (scipy's own limit), when no
difference is zero and no two are of equal size; the normal approximation otherwise."""
EXACT_RANK_SUM_AT_MOST: Final = 8
"""Mann-Whitney: the exact null distribution when the smaller sample has at most this many
scores (scipy's own rule) and no score occurs twice; the normal approximation otherwise."""
MATERIALISE_AT_MOST: Final = 1 << 20
"""Pairwise values (Walsh averages, differences) held at once while choosing an order statistic:
about 32 MB, where every pair of two samples of 10,000 would be 800 MB."""

SCIPY_TESTS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "welch_t": ("ttest_ind", {"equal_var": False}),
    "mann_whitney_u": ("mannwhitneyu", {}),
    "paired_t": ("ttest_rel", {}),
    "wilcoxon": ("wilcoxon", {}),
}
"""Test name -> (``scipy.stats`` function, keyword arguments); every test is called as
``function(variant, baseline, alternative="two-sided", ...)``, a rank test with the ``method``
(exact or asymptotic) its interval uses."""

PAIRED_COUNTERPART: Final[dict[str, str]] = {"welch_t": "paired_t", "mann_whitney_u": "wilcoxon"}
TEST_LABELS: Final = {
    "welch_t": "Welch t",
    "mann_whitney_u": "Mann-Whitney U",
    "paired_t": "paired t",
    "wilcoxon": "Wilcoxon signed-rank",
    MCNEMAR_EXACT: "McNemar exact",
    MCNEMAR_CHI2: "McNemar chi-square",
}
HODGES_LEHMANN_EXACT: Final = "hodges_lehmann_exact"
HODGES_LEHMANN_NORMAL: Final = "hodges_lehmann_normal"
"""``interval_method`` of a rank test's interval, by the null distribution its bounds come from;
a t test's interval is named after the test."""

CLIFFS_DELTA_MAGNITUDES: Final = ((0.147, "negligible"), (0.33, "small"), (0.474, "medium"))
"""Upper bounds of ``|delta|`` per label (Romano et al., 2006); at or above the last: large."""
LARGE: Final = "large"

LEVELS: Final = ("alpha", "confidence")


class ScoreComparisonParameters(OutcomeParameters):
    """Rows pair up by ``key``; ``alpha`` is the significance level of the two-sided tests and
    ``confidence`` (``1 - alpha``) the level of their intervals: give either. ``criteria``
    and/or ``outcomes`` name what is compared."""

    key: list[str] = pydantic.Field(
        default_factory=lambda: ["_row"], min_length=1, description="columns that pair rows"
    )
    alpha: float = pydantic.Field(default=0.05, gt=0, lt=1, description="significance level")
    test: RequestedTest = "auto"
    higher_is_better: bool = True

    _key_list = pydantic.field_validator("key", mode="before")(as_column_list)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _either_level(cls, data: Any) -> Any:
        # One level given implies the other, rounded as written (1 - 0.99 is 0.01, not
        # 0.010000000000000009); a value that is no level in (0, 1) is left to its field's own
        # check, which names it.
        if not isinstance(data, dict) or sum(name in data for name in LEVELS) != 1:
            return data
        given, implied = LEVELS if LEVELS[0] in data else LEVELS[::-1]
        try:
            level = float(data[given])
        except (TypeError, ValueError):
            return data
        return {**data, implied: round(1 - level, 12)} if 0 < level < 1 else data

    @pydantic.field_validator("key")
    @classmethod
    def _distinct_key(cls, names: list[str]) -> list[str]:
        return distinct_names(names, "key")

    @pydantic.model_validator(mode="after")
    def _key_is_not_a_score(self) -> ScoreComparisonParameters:
        overlap = set(self.key) & set(self.score_columns)
        if overlap:
            raise ValueError(f"{sorted(overlap)} cannot be both a key and a score column")
        overlap = set(self.key) & set(self.outcome_columns)
        if overlap:
            raise ValueError(f"{sorted(overlap)} cannot be both a key and an outcome column")
        return self

    @pydantic.model_validator(mode="after")
    def _one_level(self) -> ScoreComparisonParameters:
        if not math.isclose(self.alpha + self.confidence, 1.0, rel_tol=0.0, abs_tol=1e-12):
            raise ValueError(
                f"confidence {self.confidence:g} and alpha {self.alpha:g} must add up to 1: a "
                "verdict's interval holds the shifts its test does not reject at alpha"
            )
        return self


@dataclass(frozen=True, slots=True)
class Analysis:
    """One design's answer (independent samples or pairs): the test used (None when there were
    too few values to try), the difference of means (variant - baseline), the test's own
    estimate with its interval and the interval's method, the test's statistic and p-value, and
    why they are NaN when they are."""

    test: str | None
    difference: float
    estimate: float
    ci_low: float
    ci_high: float
    interval_method: str | None
    statistic: float
    p_value: float
    undetermined: str | None

    @property
    def significant(self) -> bool | None:
        """Whether the interval excludes 0; None without an answer."""
        if self.test is None or self.undetermined is not None:
            return None
        return bool(self.ci_low > 0 or self.ci_high < 0)


@dataclass(frozen=True, slots=True)
class RankInterval:
    """A Hodges-Lehmann estimate and its distribution-free interval; ``exact`` when the bounds
    come from the exact null distribution, not the normal approximation."""

    estimate: float
    low: float
    high: float
    exact: bool

    @property
    def method(self) -> str:
        return HODGES_LEHMANN_EXACT if self.exact else HODGES_LEHMANN_NORMAL


class ScoreComparison(Plugin):
    """Proxies: baseline first, variant second. The comparison is written through the first."""

    name = "score_comparison"
    kind = PluginKind.BASELINE_COMPARISON
    clearance = SecurityLevel.SECRET
    Parameters = ScoreComparisonParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        parameters: ScoreComparisonParameters = self.parameters  # type: ignore[assignment]
        baseline, variant = (proxy.get_view() for proxy in proxies)
        wanted = list(
            dict.fromkeys([*parameters.key, *parameters.score_columns, *parameters.outcome_columns])
        )
        require_columns(baseline.data, wanted, "baseline")
        require_columns(variant.data, wanted, "variant")
        summary = compare_frames(baseline.data[wanted], variant.data[wanted], parameters)
        proxies[0].replace_data(summary, baseline.version)


def compare_frames(
    baseline: pd.DataFrame, variant: pd.DataFrame, parameters: ScoreComparisonParameters
) -> pd.DataFrame:
    """The comparison frame: a row per criterion, :data:`COMPARISON_COLUMNS` in order; then,
    when ``outcomes`` are given, a row per outcome and :data:`OUTCOME_COMPARISON_COLUMNS`."""
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
    if not parameters.outcomes:
        return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).astype(NULLABLE_DTYPES)
    rows += [compare_outcome(baseline, variant, name, parameters) for name in parameters.outcomes]
    columns = [*COMPARISON_COLUMNS, *OUTCOME_COMPARISON_COLUMNS]
    return pd.DataFrame(rows, columns=columns).astype(NULLABLE_DTYPES | OUTCOME_NULLABLE_DTYPES)


@dataclass(frozen=True, slots=True)
class OutcomePairs:
    """The 2x2 table of keys with a pass or fail on both sides (``baseline_only``: the baseline
    passed and the variant failed, McNemar's b; ``variant_only``: c), and the keys left out:
    an error on either side (``errors``), or else a tie of repeats on either side (``ties``)."""

    both: int
    baseline_only: int
    variant_only: int
    neither: int
    errors: int
    ties: int

    @property
    def total(self) -> int:
        return self.both + self.baseline_only + self.variant_only + self.neither


def collapse_outcomes(
    frame: pd.DataFrame, column: str, key: list[str], role: str
) -> pd.Series[Any]:
    """Per key (null keys left out, as for criteria): the majority of its non-error outcomes,
    ``pass`` or ``fail``; :data:`TIE` when passes and fails are as many; ``error`` when every
    repeat is one. An error among repeats that otherwise answered is left out, as a criterion's
    error (no score) is left out of its key's mean."""
    import numpy as np
    import pandas as pd

    outcomes = frame[column]
    outcome_counts(outcomes, f"{role} {column}")
    flags = pd.DataFrame({"passes": outcomes.eq(PASSED), "fails": outcomes.eq(FAILED)}).astype(
        "int64"
    )
    per_key = pd.concat([frame[key], flags], axis=1).groupby(key, dropna=True).sum()
    passes, fails = per_key["passes"].to_numpy(), per_key["fails"].to_numpy()
    collapsed = np.select(
        [passes + fails == 0, passes > fails, fails > passes],
        [ERROR_OUTCOME, PASSED, FAILED],
        default=TIE,
    )
    return pd.Series(collapsed, index=per_key.index, dtype=object)


def pair_outcomes(baseline: pd.Series[Any], variant: pd.Series[Any]) -> OutcomePairs:
    """The keys on both sides, as :class:`OutcomePairs`."""
    import pandas as pd

    pairs = pd.concat([baseline, variant], axis=1, join="inner", keys=["baseline", "variant"])
    errored = pairs.isin([ERROR_OUTCOME]).any(axis=1)
    tied = ~errored & pairs.isin([TIE]).any(axis=1)
    kept = pairs[~errored & ~tied]
    baseline_passed, variant_passed = (
        kept["baseline"].eq(PASSED),
        kept["variant"].eq(PASSED),
    )
    return OutcomePairs(
        both=int((baseline_passed & variant_passed).sum()),
        baseline_only=int((baseline_passed & ~variant_passed).sum()),
        variant_only=int((~baseline_passed & variant_passed).sum()),
        neither=int((~baseline_passed & ~variant_passed).sum()),
        errors=int(errored.sum()),
        ties=int(tied.sum()),
    )


def mcnemar(baseline_only: int, variant_only: int) -> tuple[str, float]:
    """McNemar's two-sided test of b = ``baseline_only`` against c = ``variant_only`` (b + c >
    0): under the null each discordant pair goes either way with probability 1/2. Below
    :data:`MCNEMAR_EXACT_BELOW` discordant pairs the exact binomial test (scipy's ``binomtest``:
    2 P(X <= min(b, c)), at most 1); else chi-square with one degree of freedom of
    ``max(|b - c| - 1, 0)^2 / (b + c)``: the continuity correction stops at 0, as scipy's
    ``chi2_contingency`` does, so b = c gives p = 1 by either method."""
    from scipy import stats

    discordant = baseline_only + variant_only
    if discordant < MCNEMAR_EXACT_BELOW:
        return MCNEMAR_EXACT, float(stats.binomtest(baseline_only, discordant, 0.5).pvalue)
    statistic = max(abs(baseline_only - variant_only) - 1, 0) ** 2 / discordant
    return MCNEMAR_CHI2, float(stats.chi2.sf(statistic, 1))


def compare_outcome(
    baseline: pd.DataFrame, variant: pd.DataFrame, name: str, parameters: ScoreComparisonParameters
) -> dict[str, Any]:
    """One outcome's row: the pass rate (accuracy) of each side over the same pairs, each with
    its Wilson interval, their difference (variant - baseline) and McNemar's test of it. A pass
    is better whatever ``higher_is_better`` says (that is about scores)."""
    column = name + OUTCOME_SUFFIX
    pairs = pair_outcomes(
        collapse_outcomes(baseline, column, parameters.key, "baseline"),
        collapse_outcomes(variant, column, parameters.key, "variant"),
    )
    total, confidence = pairs.total, parameters.confidence
    passes = {
        "baseline": pairs.both + pairs.baseline_only,
        "variant": pairs.both + pairs.variant_only,
    }
    difference = (pairs.variant_only - pairs.baseline_only) / total if total else None
    test: str | None = None
    p_value: float | None = None
    reason: str | None = None
    if not total:
        reason = "no key has a pass or fail on both sides"
    elif not pairs.baseline_only + pairs.variant_only:
        # As with criteria whose paired differences are all zero: the sides never disagree, so
        # there is nothing to test (the exact test's only possible outcome has p = 1).
        test, reason = MCNEMAR_EXACT, f"no discordant pairs: both sides agree on all {total}"
    else:
        test, p_value = mcnemar(pairs.baseline_only, pairs.variant_only)
    row: dict[str, Any] = {
        "criterion": name,
        # The criterion-only text columns are None, as on a criterion row without an answer.
        **dict.fromkeys(("interval_method", "test", "effect_magnitude")),
        "paired_interval_method": None,
        "confidence": confidence,
        "paired_rows": total,
        "paired_test": test,
        "paired_p_value": p_value,
        "significant": None if p_value is None else p_value < parameters.alpha,
        "pass_rate_difference": difference,
        "both_passed": pairs.both,
        "baseline_only_passed": pairs.baseline_only,
        "variant_only_passed": pairs.variant_only,
        "both_failed": pairs.neither,
        "error_pairs": pairs.errors,
        "tied_pairs": pairs.ties,
    }
    for side in ("baseline", "variant"):
        low, high = wilson_interval(passes[side], total - passes[side], confidence)
        row[f"{side}_pass_rate"] = passes[side] / total if total else None
        row[f"{side}_pass_rate_ci_low"] = None if math.isnan(low) else low
        row[f"{side}_pass_rate_ci_high"] = None if math.isnan(high) else high
    row["verdict"] = outcome_verdict(name, pairs, row, reason)
    return row


def outcome_verdict(name: str, pairs: OutcomePairs, row: dict[str, Any], reason: str | None) -> str:
    """One plain sentence: the direction and size of the pass-rate difference, both rates over
    the pairs, McNemar's p with b and c, and the keys left out."""
    left_out = [
        f"{count} {what} left out"
        for count, what in ((pairs.errors, "error pairs"), (pairs.ties, "tied keys"))
        if count
    ]
    excluded = f"; {', '.join(left_out)}" if left_out else ""
    if reason is not None:
        return f"{name}: not enough data to compare ({reason}{excluded})"
    difference = row["pass_rate_difference"]
    details = (
        f"pass rate {row['variant_pass_rate']:.2f} vs {row['baseline_pass_rate']:.2f} over "
        f"{pairs.total} pairs; {TEST_LABELS[row['paired_test']]} {_p(row['paired_p_value'])}, "
        f"b={pairs.baseline_only}, c={pairs.variant_only}{excluded}"
    )
    if not row["significant"]:
        return f"{name}: no significant difference ({_signed(difference)}, {details})"
    direction = "better than" if difference > 0 else "worse than"
    return f"{name}: variant {direction} baseline by {_signed(difference)} ({details})"


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
    return {
        "criterion": criterion,
        "baseline_count": len(baseline),
        "baseline_mean": _mean(baseline),
        "variant_count": len(variant),
        "variant_mean": _mean(variant),
        "difference": independent.difference,
        "estimate": independent.estimate,
        "ci_low": independent.ci_low,
        "ci_high": independent.ci_high,
        "confidence": parameters.confidence,
        "interval_method": independent.interval_method,
        "test": independent.test,
        "statistic": independent.statistic,
        "p_value": independent.p_value,
        "cliffs_delta": delta,
        "effect_magnitude": effect_magnitude(delta),
        "paired_rows": len(pairs[0]),
        "paired_test": paired.test,
        "paired_mean_difference": paired.difference,
        "paired_estimate": paired.estimate,
        "paired_ci_low": paired.ci_low,
        "paired_ci_high": paired.ci_high,
        "paired_interval_method": paired.interval_method,
        "paired_p_value": paired.p_value,
        "significant": deciding.significant,
        "verdict": verdict(criterion, deciding, delta, parameters),
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
    """The two samples as independent: the chosen test and its interval."""
    import numpy as np

    difference = _mean(variant) - _mean(baseline)
    if min(len(baseline), len(variant)) < MIN_PER_SIDE:
        reason = (
            f"{len(baseline)} baseline and {len(variant)} variant scores; "
            f"each side needs at least {MIN_PER_SIDE}"
        )
        return _untested(difference, reason)
    test = choose_test(parameters.test, baseline, variant)
    if all_equal(np.concatenate([baseline, variant])):
        return _undetermined(test, difference, "every score is the same")
    if test == "mann_whitney_u":
        interval = shift_interval(baseline, variant, parameters.alpha)
        return _rank_analysis(test, difference, interval, variant, baseline, alpha=parameters.alpha)
    if all_equal(baseline) and all_equal(variant):
        return _undetermined(test, difference, f"no spread for the {TEST_LABELS[test]} test")
    return _t_analysis(test, difference, variant, baseline, parameters.alpha)


def paired_analysis(
    baseline: Scores, variant: Scores, parameters: ScoreComparisonParameters
) -> Analysis:
    """Aligned per-key means as pairs: the chosen paired test and its interval."""
    if len(baseline) < MIN_PER_SIDE:
        return _untested(math.nan, f"fewer than {MIN_PER_SIDE} paired rows")
    differences = variant - baseline
    difference = float(differences.mean())
    test = PAIRED_COUNTERPART[choose_test(parameters.test, baseline, variant)]
    if all_equal(differences, to=0.0):
        return _undetermined(test, difference, "every paired difference is zero")
    if test == "wilcoxon":
        interval = signed_rank_interval(differences, parameters.alpha)
        return _rank_analysis(test, difference, interval, variant, baseline, alpha=parameters.alpha)
    if all_equal(differences):
        return _undetermined(test, difference, f"no spread for the {TEST_LABELS[test]} test")
    return _t_analysis(test, difference, variant, baseline, parameters.alpha)


def _t_analysis(
    test: str, difference: float, variant: Scores, baseline: Scores, alpha: float
) -> Analysis:
    """A t test with its own interval, around the difference of means it tests."""
    result = _scipy_test(test, variant, baseline)
    interval = result.confidence_interval(1 - alpha)
    analysis = Analysis(
        test,
        difference,
        difference,
        float(interval.low),
        float(interval.high),
        test,
        float(result.statistic),
        float(result.pvalue),
        None,
    )
    return _settled(analysis, alpha)


def _rank_analysis(
    test: str,
    difference: float,
    interval: RankInterval,
    variant: Scores,
    baseline: Scores,
    *,
    alpha: float,
) -> Analysis:
    """A rank test run with the null distribution (exact or normal) its interval used."""
    method = "exact" if interval.exact else "asymptotic"
    result = _scipy_test(test, variant, baseline, method=method)
    analysis = Analysis(
        test,
        difference,
        interval.estimate,
        interval.low,
        interval.high,
        interval.method,
        float(result.statistic),
        float(result.pvalue),
        None,
    )
    return _settled(analysis, alpha)


def _settled(analysis: Analysis, alpha: float) -> Analysis:
    """The interval holds the shifts its test keeps at every shift but 0 itself, where ties and
    zeros make the test see other data. When 0 is one end of the interval and not the estimate,
    the test at 0 (its p-value) decides whether that end belongs: an end it rejects moves to the
    nearest float beyond 0, so the interval is the set of floats kept (and prints as 0.00).
    Elsewhere the interval decides, even where p says otherwise (a rejected 0 inside the
    interval, a kept 0 outside it), and the verdict says so."""
    low, high = analysis.ci_low, analysis.ci_high
    if not (analysis.p_value < alpha and analysis.estimate != 0):
        return analysis
    if low == 0 < high:
        return replace(analysis, ci_low=math.ulp(0.0))
    if low < 0 == high:
        return replace(analysis, ci_high=-math.ulp(0.0))
    return analysis


def _untested(difference: float, reason: str) -> Analysis:
    return Analysis(
        None, difference, math.nan, math.nan, math.nan, None, math.nan, math.nan, reason
    )


def _undetermined(test: str, difference: float, reason: str) -> Analysis:
    return Analysis(
        test, difference, math.nan, math.nan, math.nan, None, math.nan, math.nan, reason
    )


def _scipy_test(name: str, variant: Scores, baseline: Scores, **options: Any) -> Any:
    from scipy import stats

    function, keywords = SCIPY_TESTS[name]
    with degenerate_samples_allowed():
        return getattr(stats, function)(
            variant, baseline, alternative="two-sided", **keywords, **options
        )


# --- Hodges-Lehmann estimates and their intervals ------------------------------------------------
#
# A rank test of "no shift" at 0, repeated at every shift t, rejects t exactly when the count of
# pairwise values (Walsh averages of the paired differences; differences variant - baseline)
# below t, or above it, is at most a critical count c: P(count <= c) < alpha / 2 under the null,
# as p < alpha is P(count <= observed) < alpha / 2 (both tails are alike). The shifts it keeps
# run from the (c + 1)-th smallest pairwise value to the (c + 1)-th largest. At t = 0, unless a
# pairwise value is 0 itself (a zero or two opposite paired differences; a score on both sides),
# the counts are the test's own statistics (W+ and W-, U of either side) and its ties are those
# of every shift, so 0 lies outside the interval exactly when the test at 0 gives p < alpha.
# A pairwise value at 0 is left to :func:`_settled`.


def signed_rank_interval(differences: Scores, alpha: float) -> RankInterval:
    """The Walsh averages' median and the interval of the Wilcoxon signed-rank test."""
    import numpy as np

    count = len(differences)
    values, multiplicities = np.unique(differences, return_counts=True)
    exact = (
        count <= EXACT_SIGNED_RANK_AT_MOST
        and not (differences == 0).any()
        and np.unique(np.abs(differences)).size == count
    )
    if exact:
        critical = signed_rank_critical_count(count, alpha)
    else:
        # At a shift other than 0 only equal differences stay tied, so only they correct the
        # variance (scipy's formula, without its continuity correction, as scipy's default).
        variance = (count * (count + 1) * (2 * count + 1) - _tie_term(multiplicities) / 2) / 24
        critical = normal_critical_count(count * (count + 1) / 4, variance, alpha, continuity=0)
    return _hodges_lehmann(
        PairwiseValues(values, multiplicities, values, multiplicities, True), critical, exact
    )


def shift_interval(baseline: Scores, variant: Scores, alpha: float) -> RankInterval:
    """The median of every difference variant - baseline and the Mann-Whitney U interval."""
    import numpy as np

    sizes = len(baseline), len(variant)
    exact = min(sizes) <= EXACT_RANK_SUM_AT_MOST and np.unique(
        np.concatenate([baseline, variant])
    ).size == sum(sizes)
    low_values, low_multiplicities = np.unique(baseline, return_counts=True)
    high_values, high_multiplicities = np.unique(variant, return_counts=True)
    if exact:
        critical = rank_sum_critical_count(*sizes, alpha)
    else:
        # Ties within a sample survive every shift, ties across the samples only some: only the
        # former correct the variance (scipy's formula, with its default continuity correction).
        pooled = sum(sizes)
        ties = _tie_term(low_multiplicities) + _tie_term(high_multiplicities)
        variance = sizes[0] * sizes[1] / 12 * ((pooled + 1) - ties / (pooled * (pooled - 1)))
        critical = normal_critical_count(sizes[0] * sizes[1] / 2, variance, alpha, continuity=0.5)
    values = PairwiseValues(low_values, low_multiplicities, high_values, high_multiplicities, False)
    return _hodges_lehmann(values, critical, exact)


def _hodges_lehmann(values: PairwiseValues, critical: int, exact: bool) -> RankInterval:
    """The median of the pairwise values and the interval from the (critical + 1)-th smallest to
    the (critical + 1)-th largest; every shift is kept (the interval is unbounded) when no count
    is rare enough to reject, as with three scores a side at alpha 0.05."""
    total = values.total
    estimate = (values.kth((total + 1) // 2) + values.kth(total // 2 + 1)) / 2
    if critical < 0:
        return RankInterval(estimate, -math.inf, math.inf, exact)
    return RankInterval(estimate, values.kth(critical + 1), values.kth(total - critical), exact)


def signed_rank_critical_count(count: int, alpha: float) -> int:
    """The largest c with P(W+ <= c) < alpha / 2 for ``count`` pairs, from the exact null
    distribution (every sign pattern of the ranks equally likely; the one scipy's exact test
    uses, counted here in integers); -1 when there is none."""
    import numpy as np

    # Number of sign patterns per rank sum, rank by rank: a rank is either in the sum or not.
    patterns = np.zeros(count * (count + 1) // 2 + 1, dtype=np.int64)
    patterns[0] = 1
    for rank in range(1, count + 1):
        patterns[rank:] = patterns[rank:] + patterns[:-rank]
    return _exact_critical_count(np.cumsum(patterns).tolist(), 2**count, alpha)


def rank_sum_critical_count(baseline_size: int, variant_size: int, alpha: float) -> int:
    """The largest c with P(U <= c) < alpha / 2 for samples of these sizes, from the exact null
    distribution (every assignment of the ranks to the samples equally likely; the one scipy's
    exact test uses, counted here in integers); -1 when there is none."""
    import numpy as np

    smaller, larger = sorted((baseline_size, variant_size))
    degree = smaller * larger // 2  # c is below the middle of the distribution
    # Assignments per U: the coefficients of the Gaussian binomial, the product over
    # i = 1..smaller of (1 - q^(larger + i)) / (1 - q^i), as power series up to q^degree, in
    # Python integers (there are C(n + m, n) assignments).
    counts: npt.NDArray[np.object_] = np.zeros(degree + 1, dtype=object)
    counts[0] = 1
    for step in range(1, smaller + 1):
        for start in range(step):
            counts[start::step] = np.cumsum(counts[start::step])
        power = larger + step
        if power <= degree:
            counts[power:] = counts[power:] - counts[: degree + 1 - power]
    cumulative = np.cumsum(counts).tolist()
    return _exact_critical_count(cumulative, math.comb(smaller + larger, smaller), alpha)


def _exact_critical_count(cumulative: list[int], outcomes: int, alpha: float) -> int:
    # cumulative[c] of ``outcomes`` equally likely outcomes have a count of at most c. Compared
    # in fractions, with alpha as written (0.2 is 1/5, not the binary float just above it): an
    # exact p-value such as 2/10 can equal alpha, and is then not below it, as scipy finds.
    return bisect.bisect_left(cumulative, Fraction(str(alpha)) * outcomes / 2) - 1


def normal_critical_count(mean: float, variance: float, alpha: float, continuity: float) -> int:
    """The largest integer c that the normal approximation rejects at alpha (two-sided):
    ``mean - c - continuity > z(1 - alpha / 2) * sd``; -1 when there is none."""
    from scipy import stats

    bound = mean - continuity - float(stats.norm.isf(alpha / 2)) * math.sqrt(variance)
    return max(math.ceil(bound) - 1, -1)


def _tie_term(multiplicities: Indices) -> float:
    return float(sum(int(size) ** 3 - int(size) for size in multiplicities))


@dataclass(frozen=True, slots=True)
class PairwiseValues:
    """Every pair of two samples without writing every pair down: the differences ``b - a`` of a
    value ``a`` of the first and ``b`` of the second, or (``walsh``, the two samples the same)
    the Walsh averages ``(a_i + a_j) / 2`` over ``i <= j``. Each sample is given as its sorted
    distinct values with their multiplicities, so ratings with few distinct values stay small.

    Seen as a matrix with a row per first value and a column per second one, each row rises
    (floating-point addition and subtraction are monotonic), so the values at most ``t`` are a
    prefix of every row: counting them needs a search per row, not every pair."""

    rows: Scores
    row_multiplicities: Indices
    columns: Scores
    column_multiplicities: Indices
    walsh: bool

    @property
    def total(self) -> int:
        if self.walsh:
            size = int(self.row_multiplicities.sum())
            return size * (size + 1) // 2
        return int(self.row_multiplicities.sum()) * int(self.column_multiplicities.sum())

    def kth(self, rank: int, materialise_at_most: int = MATERIALISE_AT_MOST) -> float:
        """The ``rank``-th smallest value (from 1, counting multiplicities)."""
        import numpy as np

        # Candidates: columns low[i]..high[i] of each row. A pivot (a weighted median of the
        # rows' middle candidates) removes a quarter of them or more per round, until they fit.
        low = np.zeros(len(self.rows), dtype=np.intp)
        high = np.full(len(self.rows), len(self.columns), dtype=np.intp)
        while int((high - low).sum()) > materialise_at_most:
            pivot = self._pivot(low, high)
            below = self._prefix(pivot, strict=True)
            at_most = self._prefix(pivot, strict=False)
            if self._count(below) >= rank:
                high = below
            elif self._count(at_most) < rank:
                low = at_most
            else:
                return pivot
        return self._select(low, high, rank)

    def _values(self, rows: Indices, columns: Indices) -> Scores:
        if self.walsh:
            return (self.rows[rows] + self.columns[columns]) / 2
        return self.columns[columns] - self.rows[rows]

    def _prefix(self, threshold: float, strict: bool) -> Indices:
        """Per row, how many columns hold a value below ``threshold`` (``strict``) or at most."""
        import numpy as np

        guess = 2 * threshold - self.rows if self.walsh else threshold + self.rows
        prefix: Indices = np.searchsorted(
            self.columns, guess, side="left" if strict else "right"
        ).astype(np.intp)

        def qualifies(rows: Indices, columns: Indices) -> npt.NDArray[np.bool_]:
            values = self._values(rows, columns)
            return values < threshold if strict else values <= threshold

        # The guess is off by rounding: move each row's end to where its values stop qualifying.
        while True:
            ahead = np.flatnonzero(prefix < len(self.columns))
            longer = ahead[qualifies(ahead, prefix[ahead])]
            if not longer.size:
                break
            prefix[longer] += 1
        while True:
            behind = np.flatnonzero(prefix > 0)
            shorter = behind[~qualifies(behind, prefix[behind] - 1)]
            if not shorter.size:
                return prefix
            prefix[shorter] -= 1

    def _count(self, prefix: Indices) -> int:
        """The values in the rows' prefixes, counting multiplicities."""
        import numpy as np

        before = np.concatenate([[0], np.cumsum(self.column_multiplicities)])
        full = int(np.dot(self.row_multiplicities, before[prefix]))
        if not self.walsh:
            return full
        # The square counts each pair i < j twice and (i, i) m_i^2 times; the triangle wants
        # once and m_i (m_i + 1) / 2 times. (i, i) is in row i's prefix when i < prefix[i].
        diagonal = int(self.row_multiplicities[np.arange(len(self.rows)) < prefix].sum())
        return (full + diagonal) // 2

    def _pivot(self, low: Indices, high: Indices) -> float:
        import numpy as np

        sizes = high - low
        rows = np.flatnonzero(sizes)
        middles = self._values(rows, (low[rows] + high[rows]) // 2)
        order = np.argsort(middles, kind="stable")
        weights = np.cumsum(sizes[rows][order])
        return float(middles[order][np.searchsorted(weights, weights[-1] / 2)])

    def _select(self, low: Indices, high: Indices, rank: int) -> float:
        import numpy as np

        sizes = high - low
        rows = np.repeat(np.arange(len(self.rows)), sizes)
        starts = np.cumsum(sizes) - sizes
        columns = np.arange(int(sizes.sum())) - np.repeat(starts - low, sizes)
        multiplicity = self.row_multiplicities[rows] * self.column_multiplicities[columns]
        if self.walsh:
            upper = columns >= rows
            rows, columns, multiplicity = rows[upper], columns[upper], multiplicity[upper]
            same = columns == rows
            own = self.row_multiplicities[rows[same]]
            multiplicity[same] = own * (own + 1) // 2
        values = self._values(rows, columns)
        order = np.argsort(values, kind="stable")
        reached = np.cumsum(multiplicity[order]) + self._count(low)
        return float(values[order][np.searchsorted(reached, rank)])


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
    criterion: str, deciding: Analysis, delta: float, parameters: ScoreComparisonParameters
) -> str:
    """One plain sentence from the deciding analysis (paired when rows pair, else independent):
    its estimate and interval, which decide, and its test's p-value."""
    significant = deciding.significant
    if significant is None or deciding.test is None:
        return f"{criterion}: not enough data to compare ({deciding.undetermined})"
    interval = (
        f"{parameters.confidence * 100:g}% CI {_end(deciding.ci_low)} to {_end(deciding.ci_high)}"
    )
    if deciding.interval_method in (HODGES_LEHMANN_EXACT, HODGES_LEHMANN_NORMAL):
        interval = f"Hodges-Lehmann estimate, {interval}"
    test = f"{TEST_LABELS[deciding.test]} {_p(deciding.p_value)}"
    if (deciding.p_value < parameters.alpha) != significant:
        test += f", but the interval {'excludes' if significant else 'includes'} 0 and decides"
    details = f"{interval}; {test}; Cliff's delta {delta:.2f}, {effect_magnitude(delta)}"
    estimate = _signed(deciding.estimate)
    if not significant:
        return f"{criterion}: no significant difference ({estimate}, {details})"
    # A significant interval excludes 0 and holds the estimate, so the estimate has a sign.
    better = (deciding.estimate > 0) == parameters.higher_is_better
    direction = "better than" if better else "worse than"
    return f"{criterion}: variant {direction} baseline by {estimate} ({details})"


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


def _end(value: float) -> str:
    """An interval's end; one that :func:`_settled` moved off 0 says that 0 is not in it."""
    return f"{_signed(value)} (excluded)" if abs(value) == math.ulp(0.0) else _signed(value)


def _p(value: float) -> str:
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def _mean(values: Scores) -> float:
    return float(values.mean()) if len(values) else math.nan
