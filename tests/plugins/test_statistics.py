"""``score_summary`` and ``score_comparison`` checked against known values.

References are independent of scipy: arithmetic done by hand (written out next to each number),
Student t quantiles from printed tables, closed forms, a numerical integration of Student's t
density written here, and R's published results for Student's ``sleep`` data (R's
``example(t.test)`` / ``wilcox.test`` output). Each plugin also runs through a real sandboxed
worker, which proves scipy imports under Landlock, seccomp and the lowered limits, and that a
summary's level is the join of its inputs' levels.
"""

from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from elspeth.errors import ConfigurationError
from elspeth.orchestrator import PluginFailedError
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.plugins import PluginKind
from elspeth.plugins._declaration import validate_parameters
from elspeth.plugins.builtin._score_comparison import (
    COMPARISON_COLUMNS,
    MATERIALISE_AT_MOST,
    MIN_PER_SIDE,
    OUTCOME_COMPARISON_COLUMNS,
    PairwiseValues,
    ScoreComparison,
    ScoreComparisonParameters,
    choose_test,
    cliffs_delta,
    collapse_outcomes,
    compare_frames,
    effect_magnitude,
    rank_sum_critical_count,
    signed_rank_critical_count,
)
from elspeth.plugins.builtin._score_summary import (
    OUTCOME_SUMMARY_COLUMNS,
    SUMMARY_COLUMNS,
    ScoreSummary,
    ScoreSummaryParameters,
    summarise_criteria,
    wilson_interval,
)
from elspeth.security import SecurityLevel
from tests.orchestrator.conftest import MakeFrame, wait_for_text
from tests.plugins.conftest import nulls_as_none, run_one

L = SecurityLevel
NAN = math.nan

# Student's sleep data (extra hours of sleep under two drugs, the same ten patients).
SLEEP_DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# Two-sided 95% Student t quantiles t(0.975, df) from printed tables.
T_975 = {2: 4.302653, 3: 3.182446, 4: 2.776445, 9: 2.262157}


def summary_params(**values: Any) -> ScoreSummaryParameters:
    parameters: ScoreSummaryParameters = validate_parameters(ScoreSummary, values)
    return parameters


def comparison_params(**values: Any) -> ScoreComparisonParameters:
    parameters: ScoreComparisonParameters = validate_parameters(ScoreComparison, values)
    return parameters


def compare_one(baseline: pd.DataFrame, variant: pd.DataFrame, **values: Any) -> dict[str, Any]:
    (row,) = compare_frames(baseline, variant, comparison_params(**values)).to_dict("records")
    return row


def scores_frame(scores: list[float], rows: list[int] | None = None) -> pd.DataFrame:
    """Scores of criterion ``q`` with the pairing key ``_row`` (0, 1, ... unless given)."""
    return pd.DataFrame(
        {"_row": rows if rows is not None else range(len(scores)), "q_score": scores}
    )


def unpaired(baseline: list[float], variant: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two frames whose keys never match, so only the independent analysis runs."""
    return scores_frame(baseline), scores_frame(variant, [1000 + i for i in range(len(variant))])


def all_sandboxed(runtime: PluginRuntime, level: SecurityLevel) -> bool:
    """Every worker of the level's pool runs under Landlock and seccomp (and the limits)."""
    workers = runtime.pool(level).workers
    return bool(workers) and all(worker.sandbox_report["full"] is True for worker in workers)


def student_t_two_sided_p(t: float, df: float, steps: int = 4000) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (real, not only integer), by
    Simpson's rule over the density on [0, |t|]: an independent check, not scipy."""
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def density(x: float) -> float:
        return scale * (1 + x * x / df) ** (-(df + 1) / 2)

    h = abs(t) / steps
    weights = (1 if i in (0, steps) else 4 if i % 2 else 2 for i in range(steps + 1))
    area = h / 3 * sum(w * density(i * h) for i, w in zip(range(steps + 1), weights, strict=True))
    return 1 - 2 * area


def student_t_quantile_975(df: float) -> float:
    """t(0.975, df) by bisection on :func:`student_t_two_sided_p`."""
    low, high = 0.0, 50.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if student_t_two_sided_p(middle, df) > 0.05 else (low, middle)
    return (low + high) / 2


def test_unit_the_reference_helpers_reproduce_printed_t_tables() -> None:
    for df, quantile in T_975.items():
        assert student_t_quantile_975(df) == pytest.approx(quantile, abs=1e-6)


# --- score_summary ---------------------------------------------------------------------------


def runner_rows() -> pd.DataFrame:
    """Six rows of two criteria in the suite runner's shape. ``clarity`` has every metric column;
    ``tone`` has none. Row 4 is an infrastructure ERROR of ``clarity`` (with a stray score, a cost
    and tokens, to show what counts where); row 2 is answered without a readable score (a FAIL)."""
    return pd.DataFrame(
        {
            "text": [f"item {i}" for i in range(6)],
            "_row": range(6),
            "clarity_response": ["4", "2", "unsure", "5", None, "3"],
            "clarity_outcome": ["ok", "ok", "ok", "ok", "error", "ok"],
            "clarity_score": [4.0, 2.0, NAN, 5.0, 1.0, 3.0],
            "clarity_prompt_tokens": pd.array([10, 12, 11, 13, 9, 14], dtype="Int64"),
            "clarity_completion_tokens": pd.array([5, 6, None, 7, None, 8], dtype="Int64"),
            "clarity_cost": [0.01, 0.02, 0.01, 0.03, 0.05, 0.02],
            "clarity_latency_ms": [100.0, 200.0, 300.0, 400.0, 5000.0, NAN],
            "tone_outcome": ["ok", "ok", "error", "error", "ok", "ok"],
            "tone_score": [3.0, 3.0, NAN, NAN, 1.0, NAN],
        }
    )


@pytest.mark.integration
def test_score_summary_through_a_worker_over_chunks_of_two_levels(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = runner_rows()
    frames = [
        make_frame(data.iloc[:3], L.OFFICIAL),
        make_frame(data.iloc[3:].reset_index(drop=True), L.OFFICIAL_SENSITIVE),
    ]
    produced = run_one(
        shared_runtime,
        "score_summary",
        {"criteria": ["clarity", "tone"], "pass_threshold": 3},
        frames,
        plan_level=L.OFFICIAL_SENSITIVE,
    )
    assert produced.security_level is L.OFFICIAL_SENSITIVE  # the join of OFFICIAL and O_S
    assert all_sandboxed(shared_runtime, L.OFFICIAL_SENSITIVE)
    summary = produced.data.set_index("criterion")
    assert list(produced.data.columns) == list(SUMMARY_COLUMNS)
    clarity, tone = summary.loc["clarity"], summary.loc["tone"]
    # 6 rows, 1 ERROR (row 4): 5 answered; scored: 4, 2, 5, 3 (row 2 unreadable, row 4 errored).
    assert clarity[["rows", "answered", "errors", "scored"]].tolist() == [6, 5, 1, 4]
    assert clarity["error_rate"] == pytest.approx(1 / 6)
    # mean (4+2+5+3)/4 = 3.5; squared deviations .25+2.25+2.25+.25 = 5, std = sqrt(5/3).
    assert clarity["mean"] == pytest.approx(3.5)
    assert clarity["std"] == pytest.approx(math.sqrt(5 / 3))
    assert clarity["median"] == pytest.approx(3.5)
    # CI: 3.5 -/+ t(.975, 3) * sqrt(5/3) / 2 = 3.5 -/+ 3.182446 * 0.645497 = 3.5 -/+ 2.054260.
    assert clarity["ci_low"] == pytest.approx(1.445740, abs=1e-6)
    assert clarity["ci_high"] == pytest.approx(5.554260, abs=1e-6)
    assert clarity["confidence"] == 0.95
    # Passing (>= 3): 4, 5, 3. FAIL: the 2 and the unreadable answer. The ERROR is neither.
    assert clarity[["pass_threshold", "passed", "failed"]].tolist() == [3.0, 3, 2]
    assert clarity["pass_rate"] == pytest.approx(3 / 5)
    # Token totals over every row: 10+12+11+13+9+14 = 69 and 5+6+7+8 = 26. Per answered row with
    # both counts: 15, 18, 20, 22 -> p50 = (18+20)/2 = 19; p95 at position 0.95*3 = 2.85:
    # 20 + 0.85 * (22-20) = 21.7.
    assert clarity[["prompt_tokens", "completion_tokens"]].tolist() == [69, 26]
    assert clarity["tokens_p50"] == pytest.approx(19.0)
    assert clarity["tokens_p95"] == pytest.approx(21.7)
    # Cost total 0.01+0.02+0.01+0.03+0.05+0.02 = 0.14; answered rows sorted .01 .01 .02 .02 .03:
    # p50 = .02, p95 at 0.95*4 = 3.8: .02 + .8 * .01 = .028.
    assert clarity["cost"] == pytest.approx(0.14)
    assert clarity["cost_p50"] == pytest.approx(0.02)
    assert clarity["cost_p95"] == pytest.approx(0.028)
    # Known latencies of answered rows 100 200 300 400 (the error's 5000 and the unknown left
    # out): p50 = 250, p95 at 0.95*3 = 2.85: 300 + .85 * 100 = 385.
    assert clarity["latency_p50_ms"] == pytest.approx(250.0)
    assert clarity["latency_p95_ms"] == pytest.approx(385.0)
    # tone: 2 ERRORs, 4 answered, scores 3, 3, 1: mean 7/3, passed 2, failed 2 (the 1, a null).
    assert tone[["rows", "answered", "errors", "scored", "passed", "failed"]].tolist() == [
        6,
        4,
        2,
        3,
        2,
        2,
    ]
    assert tone["mean"] == pytest.approx(7 / 3)
    assert tone["pass_rate"] == pytest.approx(0.5)
    metrics = SUMMARY_COLUMNS[SUMMARY_COLUMNS.index("prompt_tokens") :]
    assert nulls_as_none(tone[list(metrics)]) == [None] * len(metrics)


@pytest.mark.integration
def test_score_summary_names_a_missing_column_without_quoting_values(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    secret = "SUMMARY-SECRET-CELL-31337"
    data = runner_rows().drop(columns="clarity_outcome").assign(text=secret)
    with pytest.raises(PluginFailedError, match="'score_summary'") as failure:
        shared_runtime.run(
            "score_summary",
            {"criteria": "clarity"},
            [make_frame(data)],
            chunk_id="c1",
            plan_level=L.OFFICIAL,
        )
    message = str(failure.value)
    assert secret not in message
    log_path = Path(message.split("error text is in ")[1].split(" (classified", maxsplit=1)[0])
    assert wait_for_text(log_path, "score_summary column(s) ['clarity_outcome'] not in the frame")
    assert secret not in log_path.read_text()


def test_unit_summary_known_intervals() -> None:
    # R, t.test(sleep$extra[1:10]): mean 0.75, 95 percent CI -0.5297804 2.0297804.
    sleep = pd.DataFrame({"s_outcome": "ok", "s_score": SLEEP_DRUG_1})
    (row,) = summarise_criteria(sleep, summary_params(criteria="s")).to_dict("records")
    assert row["mean"] == pytest.approx(0.75)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-0.5297804, 2.0297804), abs=1e-7)
    # 2, 4, 6: mean 4, std 2, standard error 2/sqrt(3) = 1.154701; t(.975, 2) = 4.302653:
    # 4 -/+ 4.968275. At 90%, t(.95, 2) = 2.919986 (table): 4 -/+ 3.371708.
    small = pd.DataFrame({"s_outcome": "ok", "s_score": [2.0, 4.0, 6.0]})
    for confidence, half_width in ((0.95, 4.968275), (0.90, 3.371708)):
        params = summary_params(criteria="s", confidence=confidence)
        (row,) = summarise_criteria(small, params).to_dict("records")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            (4 - half_width, 4 + half_width), abs=1e-6
        )
        assert row["confidence"] == confidence


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("scores", "std_is_nan"),
    [([], True), ([4.0], True), ([0.1, 0.1, 0.1], False), ([NAN, "n/a"], True)],
)
def test_unit_summary_interval_is_nan_below_two_distinct_values(
    scores: list[Any], std_is_nan: bool
) -> None:
    data = pd.DataFrame(
        {"s_outcome": ["ok"] * len(scores), "s_score": pd.Series(scores, dtype=object)}
    )
    (row,) = summarise_criteria(data, summary_params(criteria="s")).to_dict("records")
    assert math.isnan(row["ci_low"])
    assert math.isnan(row["ci_high"])
    assert math.isnan(row["std"]) is std_is_nan


def test_unit_summary_without_threshold_or_answers_gives_nulls() -> None:
    data = pd.DataFrame(
        {"s_outcome": ["error", "error"], "s_rating": [NAN, NAN], "s_prompt_tokens": [3, 4]}
    )
    params = summary_params(criteria="s", score_column="{criterion}_rating")
    (row,) = summarise_criteria(data, params).to_dict("records")
    assert [row[c] for c in ("rows", "answered", "errors", "scored")] == [2, 0, 2, 0]
    assert row["error_rate"] == 1.0
    assert (
        nulls_as_none(pd.Series([row[c] for c in ("pass_threshold", "passed", "failed")]))
        == [None] * 3
    )
    # Tokens spent on the errors count in the total; with no completion column there is no
    # per-answer token count, and with no answers no percentile.
    assert row["prompt_tokens"] == 7
    assert pd.isna(row["completion_tokens"])
    assert pd.isna(row["tokens_p50"])
    with_threshold = summary_params(
        criteria="s", score_column="{criterion}_rating", pass_threshold=1
    )
    (row,) = summarise_criteria(data, with_threshold).to_dict("records")
    assert (row["passed"], row["failed"]) == (0, 0)
    assert pd.isna(row["pass_rate"])


def test_unit_summary_of_an_empty_frame_keeps_its_columns() -> None:
    data = runner_rows().iloc[:0]
    summary = summarise_criteria(data, summary_params(criteria=["clarity", "tone"]))
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary["rows"].tolist() == [0, 0]
    assert summary["mean"].isna().all()


# --- score_comparison --------------------------------------------------------------------------


@pytest.mark.integration
def test_score_comparison_through_a_worker_matches_r_on_the_sleep_data(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    baseline = pd.DataFrame({"_row": range(10), "extra_score": SLEEP_DRUG_1})
    variant = pd.DataFrame({"_row": range(10), "extra_score": SLEEP_DRUG_2})
    frames = [make_frame(baseline, L.OFFICIAL_SENSITIVE), make_frame(variant, L.OFFICIAL)]
    produced = run_one(
        shared_runtime,
        "score_comparison",
        {"criteria": "extra", "test": "welch_t"},
        frames,
        plan_level=L.OFFICIAL_SENSITIVE,
    )
    assert produced.security_level is L.OFFICIAL_SENSITIVE
    assert all_sandboxed(shared_runtime, L.OFFICIAL_SENSITIVE)
    assert list(produced.data.columns) == list(COMPARISON_COLUMNS)
    (row,) = produced.data.to_dict("records")
    # R: t.test(extra ~ group, data = sleep) (groups swapped: variant - baseline):
    # t = -1.8608, df = 17.776, p-value = 0.07939, 95 percent CI -3.3654832 0.2054832.
    assert (row["baseline_count"], row["variant_count"]) == (10, 10)
    assert (row["baseline_mean"], row["variant_mean"]) == pytest.approx((0.75, 2.33))
    assert row["difference"] == pytest.approx(1.58)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-0.2054832, 3.3654832), abs=1e-7)
    assert row["test"] == "welch_t"
    assert row["statistic"] == pytest.approx(1.8608, abs=1e-4)
    assert row["p_value"] == pytest.approx(0.07939, abs=1e-5)
    # R: t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9,
    # p-value = 0.002833, 95 percent CI -2.4598858 -0.7001142, mean difference -1.58.
    assert row["paired_rows"] == 10
    assert row["paired_test"] == "paired_t"
    assert row["paired_mean_difference"] == pytest.approx(1.58)
    assert (row["paired_ci_low"], row["paired_ci_high"]) == pytest.approx(
        (0.7001142, 2.4598858), abs=1e-7
    )
    assert row["paired_p_value"] == pytest.approx(0.002833, abs=1e-6)
    # Cliff's delta: R's wilcox.test gives W = 25.5 for drug 1, so U = 100 - 25.5 = 74.5 for
    # drug 2 and delta = 2 * 74.5 / 100 - 1 = 0.49 (>= 0.474: large).
    assert row["cliffs_delta"] == pytest.approx(0.49)
    assert row["effect_magnitude"] == "large"
    # The independent test alone is not significant; the pairs (which decide) are.
    assert row["significant"] is True
    assert row["verdict"] == (
        "extra: variant better than baseline by +1.58 "
        "(95% CI +0.70 to +2.46; paired t p=0.003; Cliff's delta 0.49, large)"
    )


def test_unit_mann_whitney_on_the_sleep_data_matches_r() -> None:
    # R: wilcox.test(extra ~ group, data = sleep): W = 25.5, p-value = 0.06933 (normal
    # approximation with tie and continuity corrections, as scipy's default for tied data).
    row = compare_one(*unpaired(SLEEP_DRUG_1, SLEEP_DRUG_2), criteria="q")
    assert row["test"] == "mann_whitney_u"  # auto: 10 values are a small sample
    assert row["statistic"] == pytest.approx(100 - 25.5)
    assert row["p_value"] == pytest.approx(0.06933, abs=1e-5)
    assert row["difference"] == pytest.approx(1.58)
    # The interval is the Mann-Whitney test's own, by its definition: 0.8, -0.1 and 3.4 occur on
    # both sides, so the normal approximation; no score repeats within a side, so no tie term:
    # U has mean 50 and sd sqrt(10 * 10 * 21 / 12) = 13.228757, and with the continuity
    # correction a count c is rejected when c < 50 - 0.5 - 1.959964 * 13.228757 = 23.572: c = 23.
    # The interval runs from the 24th smallest of the 100 differences to the 24th largest, the
    # estimate is the median of all 100 (the 50th and 51st: 1.3 and 1.4). (R's
    # wilcox.test(conf.int = TRUE) finds its ends by root-finding the tie-corrected statistic
    # instead, so its numbers differ.)
    differences = np.sort(
        (np.array(SLEEP_DRUG_2)[None, :] - np.array(SLEEP_DRUG_1)[:, None]).ravel()
    )
    assert (differences[23], differences[-24]) == pytest.approx((-0.1, 3.6))
    assert (row["ci_low"], row["ci_high"]) == (differences[23], differences[-24])
    assert row["estimate"] == pytest.approx(1.35) == (differences[49] + differences[50]) / 2
    assert row["interval_method"] == "hodges_lehmann_normal"
    assert row["paired_rows"] == 0
    assert row["paired_test"] is None
    assert row["significant"] is False
    assert row["verdict"] == (
        "q: no significant difference (+1.35, Hodges-Lehmann estimate, 95% CI -0.10 to +3.60; "
        "Mann-Whitney U p=0.069; Cliff's delta 0.49, large)"
    )


def test_unit_welch_by_hand() -> None:
    # baseline 2 4 6: mean 4, variance 4; variant 5 7 9 11 13: mean 9, variance 10.
    # Standard error sqrt(4/3 + 10/5) = sqrt(10/3) = 1.825742; t = 5 / 1.825742 = 2.738613;
    # Welch df = (10/3)^2 / ((4/3)^2/2 + 2^2/4) = (100/9) / (17/9) = 100/17.
    row = compare_one(*unpaired([2, 4, 6], [5, 7, 9, 11, 13]), criteria="q", test="welch_t")
    assert (row["estimate"], row["interval_method"]) == (5, "welch_t")
    standard_error = math.sqrt(10 / 3)
    df = 100 / 17
    assert row["statistic"] == pytest.approx(5 / standard_error)
    assert row["p_value"] == pytest.approx(student_t_two_sided_p(5 / standard_error, df), abs=1e-8)
    half_width = student_t_quantile_975(df) * standard_error
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (5 - half_width, 5 + half_width), abs=1e-6
    )


def test_unit_exact_mann_whitney_and_cliffs_delta_by_hand() -> None:
    # 1 2 3 against 4 5 6: the variant wins all 9 pairs, U = 9, delta = 2*9/9 - 1 = +1. Exact
    # two-sided p: 2 of the C(6,3) = 20 equally likely rankings are this extreme: 0.1.
    # The 9 differences are 1 2 2 3 3 3 4 4 5: Hodges-Lehmann shift 3. At alpha 0.05 even U = 0
    # (P = 1/20, not below 0.025) is kept, so every shift is: the interval is unbounded.
    higher = compare_one(*unpaired([1, 2, 3], [4, 5, 6]), criteria="q")
    assert (higher["test"], higher["statistic"], higher["p_value"]) == (
        "mann_whitney_u",
        9.0,
        pytest.approx(0.1),
    )
    assert (higher["estimate"], higher["ci_low"], higher["ci_high"]) == (3, -math.inf, math.inf)
    assert higher["interval_method"] == "hodges_lehmann_exact"
    assert higher["significant"] is False
    assert (higher["cliffs_delta"], higher["effect_magnitude"]) == (1.0, "large")
    # At alpha 0.2, P(U <= 0) = 1/20 < 0.1 but P(U <= 1) = 2/20 is not: c = 0, the interval is
    # the smallest to the largest difference, 1 to 5, and p = 0.1 < 0.2 agrees.
    loose = compare_one(*unpaired([1, 2, 3], [4, 5, 6]), criteria="q", alpha=0.2)
    assert (loose["ci_low"], loose["ci_high"], loose["confidence"]) == (1, 5, 0.8)
    assert loose["significant"] is True
    assert loose["verdict"] == (
        "q: variant better than baseline by +3.00 (Hodges-Lehmann estimate, 80% CI +1.00 to "
        "+5.00; Mann-Whitney U p=0.100; Cliff's delta 1.00, large)"
    )
    lower = compare_one(*unpaired([4, 5, 6], [1, 2, 3]), criteria="q")
    assert (lower["statistic"], lower["cliffs_delta"]) == (0.0, -1.0)
    assert lower["p_value"] == pytest.approx(0.1)


def test_unit_cliffs_delta_counts_ties_half_and_matches_its_definition() -> None:
    # variant 2 3 against baseline 1 2 2: greater in 4 of 6 pairs (2>1, 3>1, 3>2, 3>2), less in
    # none, tied in 2: delta = (4 - 0) / 6; U = 4 + 2/2 = 5 and 2*5/6 - 1 is the same number.
    assert cliffs_delta(np.array([1.0, 2, 2]), np.array([2.0, 3])) == pytest.approx(4 / 6)
    assert cliffs_delta(np.array([2.0, 3]), np.array([1.0, 2, 2])) == pytest.approx(-4 / 6)
    rng = np.random.default_rng(11)
    baseline, variant = rng.integers(1, 6, 40).astype(float), rng.integers(2, 6, 35).astype(float)
    by_definition = np.sign(variant[:, None] - baseline[None, :]).mean()
    assert cliffs_delta(baseline, variant) == pytest.approx(by_definition)


@pytest.mark.parametrize(
    ("delta", "label"),
    [
        (0.0, "negligible"),
        (0.146, "negligible"),
        (-0.147, "small"),
        (0.329, "small"),
        (0.33, "medium"),
        (-0.473, "medium"),
        (0.474, "large"),
        (-1.0, "large"),
        (NAN, None),
    ],
)
def test_unit_effect_magnitude_uses_romano_thresholds(delta: float, label: str | None) -> None:
    assert effect_magnitude(delta) == label


@pytest.mark.parametrize(
    ("requested", "baseline", "variant", "chosen"),
    [
        ("auto", np.linspace(0, 1, 30), np.linspace(0, 2, 30), "welch_t"),
        ("auto", np.linspace(0, 1, 29), np.linspace(0, 2, 40), "mann_whitney_u"),  # small
        ("auto", np.linspace(0, 1, 40), np.tile(np.arange(1.0, 11), 4), "mann_whitney_u"),  # 10
        ("auto", np.linspace(0, 1, 40), np.tile(np.arange(1.0, 12), 4), "welch_t"),  # 11 values
        ("welch_t", np.ones(3), np.ones(3), "welch_t"),
        ("mann_whitney_u", np.linspace(0, 1, 50), np.linspace(0, 2, 50), "mann_whitney_u"),
    ],
)
def test_unit_auto_test_choice(
    requested: Any, baseline: np.ndarray[Any, Any], variant: np.ndarray[Any, Any], chosen: str
) -> None:
    assert choose_test(requested, baseline, variant) == chosen


def test_unit_paired_choice_follows_the_same_rule() -> None:
    rng = np.random.default_rng(3)
    continuous = rng.normal(3, 1, 40)
    baseline = scores_frame(list(continuous))
    variant = scores_frame(list(continuous + rng.normal(0.5, 0.3, 40)))
    row = compare_one(baseline, variant, criteria="q")
    assert (row["test"], row["paired_test"], row["paired_rows"]) == ("welch_t", "paired_t", 40)
    ratings = scores_frame(list(np.tile([1.0, 2, 3, 4, 5], 8)))
    row = compare_one(ratings, ratings.assign(q_score=6 - ratings["q_score"]), criteria="q")
    assert (row["test"], row["paired_test"]) == ("mann_whitney_u", "wilcoxon")


def test_unit_paired_analysis_averages_repeats_per_key() -> None:
    # Per-key means: baseline k0 (1+3)/2=2, k1 2, k2 (3+5)/2=4, k3 4, k4 5 (one score);
    # variant k0 3, k1 (4+2)/2=3, k2 5, k3 6, k4 none, k5 (variant only). Pairs k0..k3 with
    # differences 1 1 1 2: mean 1.25, std sqrt(0.75/3) = 0.5, standard error 0.25, t = 5 (df 3).
    # CI 1.25 -/+ 3.182446 * 0.25. Closed form for df 3, x = t/sqrt(3):
    # p = 1 - (2/pi) * (x / (1 + x^2) + atan(x)).
    baseline = pd.DataFrame(
        {
            "_row": [0, 0, 1, 1, 2, 2, 3, 3, 4, 4],
            "_repeat": [0, 1] * 5,
            "q_score": [1, 3, 2, 2, 3, 5, 4, 4, 5, NAN],
        }
    )
    variant = pd.DataFrame(
        {
            "_row": [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
            "_repeat": [0, 1] * 6,
            "q_score": [3, 3, 4, 2, 6, 4, 5, 7, NAN, NAN, 1, 1],
        }
    )
    row = compare_one(baseline, variant, criteria="q", test="welch_t")
    assert (row["baseline_count"], row["variant_count"], row["paired_rows"]) == (9, 10, 4)
    assert row["paired_test"] == "paired_t"
    assert row["paired_mean_difference"] == pytest.approx(1.25)
    half_width = T_975[3] * 0.25
    assert (row["paired_ci_low"], row["paired_ci_high"]) == pytest.approx(
        (1.25 - half_width, 1.25 + half_width), abs=1e-6
    )
    x = 5 / math.sqrt(3)
    assert row["paired_p_value"] == pytest.approx(
        1 - 2 / math.pi * (x / (1 + x * x) + math.atan(x))
    )
    by_definition = np.sign(
        variant["q_score"].dropna().to_numpy()[:, None]
        - baseline["q_score"].dropna().to_numpy()[None, :]
    ).mean()
    assert row["cliffs_delta"] == pytest.approx(by_definition)
    assert row["significant"] is True
    delta = f"{by_definition:.2f}"
    assert row["verdict"] == (
        f"q: variant better than baseline by +1.25 (95% CI +0.45 to +2.05; paired t p=0.015; "
        f"Cliff's delta {delta}, {effect_magnitude(by_definition)})"
    )
    lower_is_better = compare_one(
        baseline, variant, criteria="q", test="welch_t", higher_is_better=False
    )
    assert lower_is_better["verdict"].startswith("q: variant worse than baseline by +1.25 (")


def test_unit_wilcoxon_exact_by_hand() -> None:
    # Five pairs with distinct differences. All positive: W- = 0, and 1 of the 2^5 = 32 equally
    # likely sign patterns has W- = 0, so the two-sided p = 2/32. With the smallest difference
    # negative: W- = 1, P(W- <= 1) = 2/32, two-sided 4/32. scipy's statistic is min(W+, W-).
    baseline = scores_frame([0.0] * 5)
    positive = compare_one(baseline, scores_frame([1.0, 2, 3, 4, 5]), criteria="q")
    assert positive["paired_test"] == "wilcoxon"
    assert positive["paired_p_value"] == pytest.approx(2 / 32)
    # The 15 Walsh averages of 1..5 have median 3. At alpha 0.05 no count is rare enough
    # (P(W+ <= 0) = 1/32 is not below 0.025): unbounded, as p = 2/32 is not below 0.05.
    assert (positive["paired_estimate"], positive["paired_interval_method"]) == (
        3,
        "hodges_lehmann_exact",
    )
    assert (positive["paired_ci_low"], positive["paired_ci_high"]) == (-math.inf, math.inf)
    assert positive["significant"] is False
    # At alpha 0.1, P(W+ <= 0) = 1/32 < 0.05 <= P(W+ <= 1) = 2/32: c = 0, the interval runs from
    # the smallest Walsh average to the largest, 1 to 5, and p = 2/32 < 0.1 agrees.
    loose = compare_one(baseline, scores_frame([1.0, 2, 3, 4, 5]), criteria="q", alpha=0.1)
    assert (loose["paired_ci_low"], loose["paired_ci_high"]) == (1, 5)
    assert loose["verdict"] == (
        "q: variant better than baseline by +3.00 (Hodges-Lehmann estimate, 90% CI +1.00 to "
        "+5.00; Wilcoxon signed-rank p=0.062; Cliff's delta 1.00, large)"
    )
    one_negative = compare_one(baseline, scores_frame([-1.0, 2, 3, 4, 5]), criteria="q")
    assert one_negative["paired_p_value"] == pytest.approx(4 / 32)
    assert one_negative["significant"] is False


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("baseline", "variant", "values", "reason"),
    [
        (
            *unpaired([], [1, 2, 3]),
            {},
            "0 baseline and 3 variant scores; each side needs at least 2",
        ),
        (
            *unpaired([4], [1, 2, 3]),
            {},
            "1 baseline and 3 variant scores; each side needs at least 2",
        ),
        (*unpaired([3, 3, 3], [3, 3]), {}, "every score is the same"),
        (*unpaired([3, 3], [4, 4]), {"test": "welch_t"}, "no spread for the Welch t test"),
        (scores_frame([3, 3, 3]), scores_frame([3, 3, 3]), {}, "every paired difference is zero"),
        (
            scores_frame([1, 2, 3]),
            scores_frame([2, 3, 4]),
            {"test": "welch_t"},
            "no spread for the paired t test",
        ),
        (
            scores_frame([NAN, "n/a"]),
            scores_frame([None, 2]),
            {},
            "0 baseline and 1 variant scores; each side needs at least 2",
        ),
        # Equal up to rounding only: scipy alone would see a spread of 1e-17 and call the
        # difference significant (t about 1e15). 0.1 + 0.2 + 0.3 = 0.6000000000000001, not 0.6,
        # so the per-key means of the same three repeats in another order differ in the last bit.
        (*unpaired([0.1] * 3, [0.2] * 3), {"test": "welch_t"}, "no spread for the Welch t test"),
        (
            scores_frame([0.1, 1.1, 2.1]),
            scores_frame([0.3, 1.3, 2.3]),
            {"test": "welch_t"},
            "no spread for the paired t test",
        ),
        (
            pd.DataFrame({"_row": [0, 0, 0, 1, 1], "q_score": [0.1, 0.2, 0.3, 1, 2]}),
            pd.DataFrame({"_row": [0, 0, 0, 1, 1], "q_score": [0.3, 0.2, 0.1, 2, 1]}),
            {},
            "every paired difference is zero",
        ),
    ],
)
def test_unit_degenerate_data_says_not_enough_data(
    baseline: pd.DataFrame, variant: pd.DataFrame, values: dict[str, Any], reason: str
) -> None:
    row = compare_one(baseline, variant, criteria="q", **values)
    assert pd.isna(row["significant"])
    assert row["verdict"] == f"q: not enough data to compare ({reason})"
    deciding = "paired_p_value" if row["paired_test"] else "p_value"
    assert pd.isna(row[deciding])


def test_unit_degenerate_statistics_are_nan_or_null() -> None:
    empty_side = compare_one(*unpaired([], [1, 2, 3]), criteria="q")
    assert empty_side["test"] is None
    assert all(
        math.isnan(empty_side[c])
        for c in ("baseline_mean", "difference", "ci_low", "statistic", "p_value", "cliffs_delta")
    )
    assert empty_side["effect_magnitude"] is None
    # Constant sides: Mann-Whitney still ranks them (U = 4 of 4 pairs, delta +1) and every
    # difference is 1; two scores a side can never be significant, so every shift is kept.
    constant = compare_one(*unpaired([3, 3], [4, 4]), criteria="q")
    assert (constant["test"], constant["statistic"], constant["cliffs_delta"]) == (
        "mann_whitney_u",
        4.0,
        1.0,
    )
    assert 0 < constant["p_value"] <= 1
    assert (constant["estimate"], constant["ci_low"], constant["ci_high"]) == (
        1,
        -math.inf,
        math.inf,
    )
    assert constant["verdict"].startswith("q: no significant difference (+1.00, Hodges-Lehmann")
    one_pair = compare_one(scores_frame([1, 2, 3]), scores_frame([5], [0]), criteria="q")
    assert one_pair["paired_rows"] == 1
    assert one_pair["paired_test"] is None
    assert (
        nulls_as_none(
            pd.Series(
                [
                    one_pair[c]
                    for c in COMPARISON_COLUMNS
                    if c.startswith("paired_") and c not in ("paired_rows", "paired_test")
                ]
            )
        )
        == [None] * 6
    )


def test_unit_every_criterion_gets_a_row_with_its_own_score_column() -> None:
    baseline = pd.DataFrame({"id": ["a", "b", "c"], "x_s": [1.0, 2, 3], "y_s": [5.0, 5, 5]})
    variant = baseline.assign(x_s=[2.0, 3, 4])
    summary = compare_frames(
        baseline,
        variant,
        comparison_params(criteria=["x", "y"], key="id", score_column="{criterion}_s"),
    )
    assert summary["criterion"].tolist() == ["x", "y"]
    assert summary["paired_mean_difference"].tolist() == [1.0, 0.0]


# --- score_comparison: a verdict and its interval come from one test ------------------------------


def signed_rank_null_counts(size: int) -> list[int]:
    """How many of the 2**size sign patterns of the ranks 1..size give each W+: enumerated."""
    counts = [0] * (size * (size + 1) // 2 + 1)
    for signs in itertools.product((False, True), repeat=size):
        counts[sum(rank for rank, sign in zip(range(1, size + 1), signs, strict=True) if sign)] += 1
    return counts


def rank_sum_null_counts(first: int, second: int) -> list[int]:
    """How many of the C(first + second, first) rankings give each U of the first sample (the
    other sample's values below each of its own): enumerated."""
    counts = [0] * (first * second + 1)
    for ranks in itertools.combinations(range(first + second), first):
        counts[sum(rank - position for position, rank in enumerate(ranks))] += 1
    return counts


def critical_by_enumeration(counts: list[int], alpha: float) -> int:
    """The largest c with P(count <= c) < alpha / 2 (alpha as written); -1 when there is none."""
    cumulative = itertools.accumulate(counts)
    below = [
        c
        for c, total in enumerate(cumulative)
        if Fraction(total, sum(counts)) < Fraction(str(alpha)) / 2
    ]
    return max(below, default=-1)


def normal_critical(mean: float, variance: float, alpha: float, continuity: float) -> int:
    """The largest integer c with mean - c - continuity > z(1 - alpha / 2) * sd, from the
    standard library's normal quantile (not scipy's)."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return math.ceil(mean - continuity - z * math.sqrt(variance)) - 1


def walsh_averages(differences: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    size = len(differences)
    return np.sort(
        [(differences[i] + differences[j]) / 2 for i in range(size) for j in range(i, size)]
    )


def all_differences(baseline: Any, variant: Any) -> np.ndarray[Any, Any]:
    return np.sort((np.asarray(variant)[None, :] - np.asarray(baseline)[:, None]).ravel())


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1, 0.2, 0.0625])
def test_unit_exact_critical_counts_match_enumeration(alpha: float) -> None:
    for size in range(1, 12):
        expected = critical_by_enumeration(signed_rank_null_counts(size), alpha)
        assert signed_rank_critical_count(size, alpha) == expected, size
    for first, second in itertools.product(range(1, 7), range(1, 8)):
        expected = critical_by_enumeration(rank_sum_null_counts(first, second), alpha)
        assert rank_sum_critical_count(first, second, alpha) == expected, (first, second)


def test_unit_exact_critical_counts_match_printed_tables() -> None:
    # Two-sided 0.05 critical values from printed tables: Wilcoxon signed-rank T for n = 6..10:
    # 0, 2, 3, 5, 8; Mann-Whitney U for 5 and 7 scores: 5, for 8 and 8: 13.
    assert [signed_rank_critical_count(n, 0.05) for n in range(6, 11)] == [0, 2, 3, 5, 8]
    assert rank_sum_critical_count(5, 7, 0.05) == 5
    assert rank_sum_critical_count(8, 8, 0.05) == 13


def test_unit_exact_hodges_lehmann_intervals_by_brute_force() -> None:
    rng = np.random.default_rng(20)
    baseline = rng.normal(size=10)
    variant = baseline + rng.normal(0.8, 1, 10)
    # Ten pairs, distinct differences: the exact distribution, c = 8 (the table's T).
    row = compare_one(
        scores_frame(list(baseline)),
        scores_frame(list(variant)),
        criteria="q",
        test="mann_whitney_u",
    )
    walsh = walsh_averages(variant - baseline)
    assert row["paired_interval_method"] == "hodges_lehmann_exact"
    assert row["paired_estimate"] == np.median(walsh)
    assert (row["paired_ci_low"], row["paired_ci_high"]) == (walsh[8], walsh[-9])
    scipy_p = stats.wilcoxon(variant, baseline).pvalue
    assert row["paired_p_value"] == pytest.approx(scipy_p, rel=1e-12)
    assert row["significant"] is bool(scipy_p < 0.05) is bool(walsh[8] > 0 or walsh[-9] < 0)
    # Five baseline and seven variant scores, all distinct: exact, c = 5 (the table's U).
    small, large = rng.normal(size=5), rng.normal(1.5, 1, 7)
    row = compare_one(*unpaired(list(small), list(large)), criteria="q")
    differences = all_differences(small, large)
    assert row["interval_method"] == "hodges_lehmann_exact"
    assert row["estimate"] == np.median(differences)
    assert (row["ci_low"], row["ci_high"]) == (differences[5], differences[-6])
    scipy_p = stats.mannwhitneyu(large, small).pvalue
    assert row["p_value"] == pytest.approx(scipy_p, rel=1e-12)
    assert (
        row["significant"]
        is bool(scipy_p < 0.05)
        is bool(differences[5] > 0 or differences[-6] < 0)
    )


def test_unit_normal_hodges_lehmann_intervals_by_brute_force() -> None:
    rng = np.random.default_rng(21)
    # 60 pairs (beyond the exact distribution's 50): W+ has mean 60 * 61 / 4 and variance
    # 60 * 61 * 121 / 24, no continuity correction (scipy's default for Wilcoxon).
    baseline = rng.normal(size=60)
    variant = baseline + rng.normal(0.3, 1, 60)
    row = compare_one(
        scores_frame(list(baseline)),
        scores_frame(list(variant)),
        criteria="q",
        test="mann_whitney_u",
    )
    walsh = walsh_averages(variant - baseline)
    c = normal_critical(60 * 61 / 4, 60 * 61 * 121 / 24, 0.05, continuity=0)
    assert row["paired_interval_method"] == "hodges_lehmann_normal"
    assert (row["paired_ci_low"], row["paired_ci_high"]) == (walsh[c], walsh[-c - 1])
    assert row["paired_estimate"] == np.median(walsh)
    assert bool(row["paired_p_value"] < 0.05) is row["significant"]
    # Ratings, 40 against 35: ties within each side correct U's variance (their t^3 - t summed,
    # over N (N - 1) with N = 75), and the continuity correction is scipy's default.
    ratings, other = rng.integers(1, 6, 40).astype(float), rng.integers(2, 6, 35).astype(float)
    row = compare_one(*unpaired(list(ratings), list(other)), criteria="q")
    ties = sum(
        int(t) ** 3 - int(t)
        for side in (ratings, other)
        for t in np.unique(side, return_counts=True)[1]
    )
    variance = 40 * 35 / 12 * (76 - ties / (75 * 74))
    c = normal_critical(40 * 35 / 2, variance, 0.05, continuity=0.5)
    differences = all_differences(ratings, other)
    assert row["interval_method"] == "hodges_lehmann_normal"
    assert (row["ci_low"], row["ci_high"]) == (differences[c], differences[-c - 1])
    assert row["estimate"] == np.median(differences)


def test_unit_large_samples_choose_order_statistics_without_every_pair() -> None:
    # 1,500 pairs have 1,125,750 Walsh averages and two samples of 1,500 have 2,250,000
    # differences: more than the plugin holds at once, so it narrows down first.
    rng = np.random.default_rng(22)
    baseline = rng.normal(size=1500)
    variant = baseline + rng.normal(0.1, 1, 1500)
    differences = variant - baseline
    walsh = np.sort(((differences[:, None] + differences[None, :]) / 2)[np.triu_indices(1500)])
    assert len(walsh) > MATERIALISE_AT_MOST
    row = compare_one(
        scores_frame(list(baseline)),
        scores_frame(list(variant)),
        criteria="q",
        test="mann_whitney_u",
    )
    c = normal_critical(1500 * 1501 / 4, 1500 * 1501 * 3001 / 24, 0.05, continuity=0)
    assert (row["paired_ci_low"], row["paired_ci_high"]) == (walsh[c], walsh[-c - 1])
    assert row["paired_estimate"] == np.median(walsh)
    row = compare_one(*unpaired(list(baseline), list(variant)), criteria="q", test="mann_whitney_u")
    every = all_differences(baseline, variant)
    c = normal_critical(1500 * 1500 / 2, 1500 * 1500 * 3001 / 12, 0.05, continuity=0.5)
    assert (row["ci_low"], row["ci_high"]) == (every[c], every[-c - 1])
    assert row["estimate"] == np.median(every)


samples_with_ties = st.lists(
    st.one_of(
        st.integers(-3, 3).map(float), st.floats(-5, 5, allow_nan=False, allow_subnormal=False)
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=samples_with_ties,
    second=samples_with_ties,
    walsh=st.booleans(),
    materialise_at_most=st.sampled_from([0, 1, 7, MATERIALISE_AT_MOST]),
    data=st.data(),
)
def test_unit_pairwise_order_statistics_match_sorting(
    first: list[float],
    second: list[float],
    walsh: bool,
    materialise_at_most: int,
    data: st.DataObject,
) -> None:
    rows, row_counts = np.unique(first, return_counts=True)
    columns, column_counts = (rows, row_counts) if walsh else np.unique(second, return_counts=True)
    values = PairwiseValues(rows, row_counts, columns, column_counts, walsh)
    everything = walsh_averages(np.array(first)) if walsh else all_differences(first, second)
    assert values.total == len(everything)
    rank = data.draw(st.integers(1, len(everything)))
    assert values.kth(rank, materialise_at_most) == everything[rank - 1]


def test_unit_a_zero_end_belongs_to_the_interval_only_if_the_test_at_zero_keeps_it() -> None:
    # 42 paired ratings differing by -1 (6 times), 0 (16), 1 (8), 2 (12). Walsh averages lie on
    # a grid of halves; the normal approximation (ties) gives c, and the c + 1-th smallest is 0:
    # every shift below 0 is rejected, every shift just above kept. At 0 itself the test drops
    # the 16 zeros and rejects (p < 0.001), so 0 is not in the interval: it starts just above 0.
    differences = np.array([-1.0] * 6 + [0.0] * 16 + [1.0] * 8 + [2.0] * 12)
    baseline = np.full(42, 3.0)
    row = compare_one(
        scores_frame(list(baseline)), scores_frame(list(baseline + differences)), criteria="q"
    )
    walsh = walsh_averages(differences)
    ties = sum(t**3 - t for t in (6, 16, 8, 12))
    c = normal_critical(42 * 43 / 4, (42 * 43 * 85 - ties / 2) / 24, 0.05, continuity=0)
    assert (walsh[c], walsh[-c - 1], np.median(walsh)) == (0.0, 1.0, 0.5)
    # scipy's own choice for 42 pairs with ties and zeros is the normal approximation too.
    assert row["paired_p_value"] == pytest.approx(
        stats.wilcoxon(baseline + differences, baseline).pvalue
    )
    assert row["paired_p_value"] < 0.001
    assert (row["paired_ci_low"], row["paired_ci_high"]) == (math.ulp(0.0), 1.0)
    assert row["significant"] is True
    assert row["verdict"].startswith(
        "q: variant better than baseline by +0.50 (Hodges-Lehmann estimate, "
        "95% CI +0.00 (excluded) to +1.00; Wilcoxon signed-rank p<0.001; "
    )


def test_unit_where_p_and_the_interval_disagree_the_interval_decides_and_says_so() -> None:
    # 55 differences: -1 (10 times), 0 (27), 1 (9), 2 (9). Dropping the 27 zeros, the test at 0
    # rejects (p = 0.014); but the Hodges-Lehmann estimate is 0 itself and the interval 0 to
    # 0.5: no direction to call, and the verdict says the interval decided.
    differences = np.array([-1.0] * 10 + [0.0] * 27 + [1.0] * 9 + [2.0] * 9)
    baseline = np.full(55, 3.0)
    row = compare_one(
        scores_frame(list(baseline)), scores_frame(list(baseline + differences)), criteria="q"
    )
    assert (row["paired_estimate"], row["paired_ci_low"], row["paired_ci_high"]) == (0.0, 0.0, 0.5)
    assert row["significant"] is False
    assert row["verdict"].startswith(
        "q: no significant difference (+0.00, Hodges-Lehmann estimate, 95% CI +0.00 to +0.50; "
        "Wilcoxon signed-rank p=0.014, but the interval includes 0 and decides; "
    )


def test_unit_alpha_and_confidence_are_one_level() -> None:
    assert comparison_params(criteria="q", alpha=0.1).confidence == 0.9
    assert comparison_params(criteria="q", confidence=0.99).alpha == 0.01
    assert comparison_params(criteria="q", alpha=0.2, confidence=0.8).alpha == 0.2
    with pytest.raises(
        ConfigurationError, match=r"confidence 0\.9 and alpha 0\.05 must add up to 1"
    ):
        comparison_params(criteria="q", alpha=0.05, confidence=0.9)
    row = compare_one(*unpaired([1, 2, 3, 4], [3, 4, 5, 6]), criteria="q", alpha=0.1)
    assert row["confidence"] == 0.9
    assert "90% CI" in row["verdict"]


ALPHAS = st.sampled_from([0.01, 0.05, 0.1, 0.2])
TESTS = st.sampled_from(["auto", "welch_t", "mann_whitney_u"])
REALS = st.floats(-100, 100, allow_nan=False, allow_subnormal=False)
SCORES = st.sampled_from([st.integers(1, 5).map(float), st.integers(-3, 3).map(float), REALS])
STEPS = st.sampled_from(
    [st.just(0.0), st.sampled_from([0.0, 1.0]), st.integers(-1, 2).map(float), REALS]
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def paired_samples(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    """A baseline and a variant of one size: ratings, small integers (ties, zero differences) or
    reals, each variant score its baseline score plus a step (none, 0 or 1, -1..2, any)."""
    size = draw(st.integers(MIN_PER_SIDE, 60))
    baseline = draw(st.lists(draw(SCORES), min_size=size, max_size=size))
    steps = draw(st.lists(draw(STEPS), min_size=size, max_size=size))
    return baseline, [score + step for score, step in zip(baseline, steps, strict=True)]


@st.composite
def independent_samples(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    """Two samples of their own sizes, the variant's shifted by a whole or any amount."""
    scores = draw(SCORES)
    baseline = draw(st.lists(scores, min_size=MIN_PER_SIDE, max_size=60))
    variant = draw(st.lists(scores, min_size=MIN_PER_SIDE, max_size=60))
    shift = draw(st.one_of(st.integers(-2, 2).map(float), REALS))
    return baseline, [score + shift for score in variant]


def assert_the_verdict_and_its_interval_agree(row: dict[str, Any], prefix: str) -> None:
    low, high = row[f"{prefix}ci_low"], row[f"{prefix}ci_high"]
    if pd.isna(row["significant"]):
        assert ": not enough data to compare (" in row["verdict"]
        return
    excludes_zero = bool(low > 0 or high < 0)
    assert low <= row[f"{prefix}estimate"] <= high
    assert row["significant"] is excludes_zero
    if ": no significant difference (" in row["verdict"]:
        assert low <= 0 <= high
    else:
        assert " than baseline by " in row["verdict"]
        assert excludes_zero


def assert_p_agrees_where_zero_is_like_any_shift(
    row: dict[str, Any], prefix: str, alpha: float, like_any_shift: bool
) -> None:
    """p < alpha exactly when the interval excludes 0, for a t test or where the rank test at
    0 sees no tie or zero that other shifts do not (up to rounding at alpha itself)."""
    p_value = row[f"{prefix}p_value"]
    rank_test = row[f"{prefix}interval_method"] not in ("welch_t", "paired_t")
    if pd.isna(row["significant"]) or (rank_test and not like_any_shift):
        return
    if not math.isclose(p_value, alpha, rel_tol=1e-9):
        assert bool(p_value < alpha) is row["significant"]


@PROPERTY
@given(samples=paired_samples(), test=TESTS, alpha=ALPHAS)
def test_property_paired_verdicts_never_contradict_their_interval(
    samples: tuple[list[float], list[float]], test: str, alpha: float
) -> None:
    baseline, variant = samples
    row = compare_one(
        scores_frame(baseline), scores_frame(variant), criteria="q", test=test, alpha=alpha
    )
    assert row["paired_test"] is not None
    assert_the_verdict_and_its_interval_agree(row, "paired_")
    differences = np.array(variant) - np.array(baseline)
    like_any_shift = (
        not (differences == 0).any()
        and np.unique(np.abs(differences)).size == np.unique(differences).size
    )
    assert_p_agrees_where_zero_is_like_any_shift(row, "paired_", alpha, like_any_shift)


@PROPERTY
@given(samples=independent_samples(), test=TESTS, alpha=ALPHAS)
def test_property_independent_verdicts_never_contradict_their_interval(
    samples: tuple[list[float], list[float]], test: str, alpha: float
) -> None:
    baseline, variant = samples
    row = compare_one(*unpaired(baseline, variant), criteria="q", test=test, alpha=alpha)
    assert row["paired_test"] is None
    assert_the_verdict_and_its_interval_agree(row, "")
    like_any_shift = not np.intersect1d(baseline, variant).size
    assert_p_agrees_where_zero_is_like_any_shift(row, "", alpha, like_any_shift)


# --- binary outcomes: Wilson intervals and McNemar's test --------------------------------------


def wilson_by_formula(passed: int, trials: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval from its closed form, with the normal quantile of the standard
    library (not scipy): (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    rate = passed / trials
    centre = rate + z * z / (2 * trials)
    half_width = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return (centre - half_width) / (1 + z * z / trials), (centre + half_width) / (
        1 + z * z / trials
    )


def outcome_rows(outcomes: list[str], rows: list[int] | None = None) -> pd.DataFrame:
    """Outcomes of scorer output ``exact`` with the key ``_row`` (0, 1, ... unless given)."""
    return pd.DataFrame(
        {"_row": rows if rows is not None else range(len(outcomes)), "exact_outcome": outcomes}
    )


def discordant_frames(
    both: int, baseline_only: int, variant_only: int, neither: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A baseline and a variant whose keys give this 2x2 table of pass/fail pairs."""
    baseline = ["pass"] * (both + baseline_only) + ["fail"] * (variant_only + neither)
    variant = (
        ["pass"] * both + ["fail"] * baseline_only + ["pass"] * variant_only + ["fail"] * neither
    )
    return outcome_rows(baseline), outcome_rows(variant)


def summarise_outcome_row(outcomes: list[Any], **values: Any) -> dict[str, Any]:
    data = pd.DataFrame({"exact_outcome": pd.Series(outcomes, dtype=object)})
    params = summary_params(outcomes="exact", **values)
    (row,) = summarise_criteria(data, params).to_dict("records")
    return row


@pytest.mark.integration
def test_score_summary_of_outcomes_through_a_worker_beside_criteria(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    # 81 passes, 182 fails and 3 errors of a scorer, beside the runner's two criteria.
    scorer = ["pass"] * 81 + ["fail"] * 182 + ["error"] * 3
    data = pd.concat([runner_rows()] * 45, ignore_index=True).iloc[: len(scorer)]
    data = data.assign(exact_outcome=scorer)
    frames = [make_frame(data.iloc[:100]), make_frame(data.iloc[100:].reset_index(drop=True))]
    produced = run_one(
        shared_runtime,
        "score_summary",
        {"criteria": ["clarity", "tone"], "outcomes": "exact", "pass_threshold": 3},
        frames,
    )
    assert list(produced.data.columns) == [*SUMMARY_COLUMNS, *OUTCOME_SUMMARY_COLUMNS]
    assert produced.data["criterion"].tolist() == ["clarity", "tone", "exact"]
    summary = produced.data.set_index("criterion")
    exact = summary.loc["exact"]
    assert exact[["rows", "answered", "errors", "passed", "failed"]].tolist() == [
        266,
        263,
        3,
        81,
        182,
    ]
    assert exact["error_rate"] == pytest.approx(3 / 266)
    # The accuracy leaves the 3 errors out of its denominator: 81 / 263, not 81 / 266.
    assert exact["pass_rate"] == pytest.approx(81 / 263)
    # Published: Wilson 95% interval of 81/263 is about (0.2553, 0.3662).
    low, high = exact["pass_rate_ci_low"], exact["pass_rate_ci_high"]
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert (low, high) == pytest.approx(wilson_by_formula(81, 263, 0.95), abs=1e-12)
    assert exact["pass_rate_ci_reason"] is None
    assert nulls_as_none(exact[["scored", "pass_threshold", "cost", "mean"]]) == [None] * 4
    # The criteria rows are what they are without outcomes, and have no pass-rate interval.
    alone = run_one(
        shared_runtime,
        "score_summary",
        {"criteria": ["clarity", "tone"], "pass_threshold": 3},
        frames,
    ).data
    assert list(alone.columns) == list(SUMMARY_COLUMNS)
    pd.testing.assert_frame_equal(
        summary.loc[["clarity", "tone"], list(SUMMARY_COLUMNS[1:])].reset_index(drop=True),
        alone[list(SUMMARY_COLUMNS[1:])],
        check_dtype=False,
    )
    assert nulls_as_none(summary.loc["clarity", list(OUTCOME_SUMMARY_COLUMNS)]) == [None] * 3


def test_unit_scipys_wilson_interval_is_the_closed_form() -> None:
    for passed, trials in ((81, 263), (1, 3), (7, 7), (0, 40), (500, 1000)):
        for confidence in (0.8, 0.95, 0.99):
            assert wilson_interval(passed, trials - passed, confidence) == pytest.approx(
                wilson_by_formula(passed, trials, confidence), abs=1e-12
            )
    ci = stats.binomtest(81, 263).proportion_ci(0.95, method="wilson")
    assert wilson_interval(81, 182, 0.95) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize(("passes", "fails"), [(0, 10), (10, 0), (0, 1), (1, 0)])
def test_unit_wilson_at_none_or_all_passing_stays_in_bounds_and_is_not_a_point(
    passes: int, fails: int
) -> None:
    row = summarise_outcome_row(["pass"] * passes + ["fail"] * fails + ["error"])
    low, high = row["pass_rate_ci_low"], row["pass_rate_ci_high"]
    assert 0 <= low < high <= 1
    # z^2 / (n + z^2) from the closed form at p = 0 (and 1 minus it at p = 1): 0/10 gives
    # 3.841459 / 13.841459 = 0.277533.
    z_squared = NormalDist().inv_cdf(0.975) ** 2
    trials = passes + fails
    if passes:
        assert (low, high) == pytest.approx((trials / (trials + z_squared), 1.0))
    else:
        assert (low, high) == pytest.approx((0.0, z_squared / (trials + z_squared)))
    assert row["pass_rate"] == passes / trials
    assert row["errors"] == 1


def test_unit_wilson_at_another_confidence() -> None:
    row = summarise_outcome_row(["pass"] * 81 + ["fail"] * 182, confidence=0.9)
    assert row["confidence"] == 0.9
    assert (row["pass_rate_ci_low"], row["pass_rate_ci_high"]) == pytest.approx(
        wilson_by_formula(81, 263, 0.9), abs=1e-12
    )


@pytest.mark.parametrize("outcomes", [["error", "error"], []])
def test_unit_no_pass_or_fail_gives_no_interval_and_says_why(outcomes: list[str]) -> None:
    row = summarise_outcome_row(outcomes)
    assert [row[c] for c in ("rows", "answered", "errors", "passed", "failed")] == [
        len(outcomes),
        0,
        len(outcomes),
        0,
        0,
    ]
    assert (
        nulls_as_none(
            pd.Series([row[c] for c in ("pass_rate", "pass_rate_ci_low", "pass_rate_ci_high")])
        )
        == [None] * 3
    )
    assert row["pass_rate_ci_reason"] == f"no pass or fail outcome ({len(outcomes)} errors)"


@pytest.mark.parametrize("stray", [None, NAN, "ok", "PASS"])
def test_unit_an_outcome_other_than_pass_fail_or_error_is_refused_by_count(stray: Any) -> None:
    with pytest.raises(
        ValueError, match=r"^exact_outcome: 1 value\(s\) are not 'pass', 'fail' or 'error'"
    ) as failure:
        summarise_outcome_row(["pass", stray, "fail"])
    assert "PASS" not in str(failure.value)  # the message never quotes a value
    with pytest.raises(ValueError, match=r"^variant exact_outcome: 1 value"):
        compare_one(outcome_rows(["pass"]), outcome_rows([stray]), outcomes="exact")


@pytest.mark.integration
def test_score_comparison_of_outcomes_through_a_worker(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    # b = 10 keys the baseline passes and the variant fails, c = 2 the other way, 5 both pass,
    # 3 both fail, and 2 keys with an error on one side each. Beside them, criterion q.
    baseline, variant = discordant_frames(both=5, baseline_only=10, variant_only=2, neither=3)
    baseline = pd.concat([baseline, outcome_rows(["error", "pass"], [20, 21])], ignore_index=True)
    variant = pd.concat([variant, outcome_rows(["pass", "error"], [20, 21])], ignore_index=True)
    baseline, variant = baseline.assign(q_score=range(22)), variant.assign(q_score=range(1, 23))
    produced = run_one(
        shared_runtime,
        "score_comparison",
        {"criteria": "q", "outcomes": "exact"},
        [make_frame(baseline), make_frame(variant)],
    )
    assert list(produced.data.columns) == [*COMPARISON_COLUMNS, *OUTCOME_COMPARISON_COLUMNS]
    q, exact = produced.data.to_dict("records")
    assert q["criterion"] == "q"
    assert q["paired_test"] == "wilcoxon"
    assert nulls_as_none(pd.Series([q[c] for c in OUTCOME_COMPARISON_COLUMNS])) == [None] * 13
    assert exact["criterion"] == "exact"
    counts = ("both_passed", "baseline_only_passed", "variant_only_passed", "both_failed")
    assert [exact[c] for c in counts] == [5, 10, 2, 3]
    assert (exact["error_pairs"], exact["tied_pairs"], exact["paired_rows"]) == (2, 0, 20)
    # Exact: b + c = 12 < 25; two-sided p = 2 P(X <= 2 | 12, 1/2) = 2 (1 + 12 + 66) / 4096.
    assert exact["paired_test"] == "mcnemar_exact"
    assert exact["paired_p_value"] == pytest.approx(2 * 79 / 4096, rel=1e-12)
    assert exact["paired_p_value"] == pytest.approx(0.03857421875, rel=1e-12)
    assert exact["significant"] is True
    # Pass rates over the 20 kept pairs: 15/20 and 7/20, each with its Wilson interval.
    assert (exact["baseline_pass_rate"], exact["variant_pass_rate"]) == (0.75, 0.35)
    assert exact["pass_rate_difference"] == pytest.approx(-0.4)
    for side, passed in (("baseline", 15), ("variant", 7)):
        assert (exact[f"{side}_pass_rate_ci_low"], exact[f"{side}_pass_rate_ci_high"]) == (
            pytest.approx(wilson_by_formula(passed, 20, 0.95), abs=1e-12)
        )
    assert exact["verdict"] == (
        "exact: variant worse than baseline by -0.40 (pass rate 0.35 vs 0.75 over 20 pairs; "
        "McNemar exact p=0.039, b=10, c=2; 2 error pairs left out)"
    )
    assert pd.isna(exact["baseline_count"])
    assert math.isnan(exact["p_value"])
    assert pd.isna(exact["test"])


def chi_square_1_sf(statistic: float) -> float:
    """P(X >= statistic) for chi-square with one degree of freedom: erfc(sqrt(statistic / 2))."""
    return math.erfc(math.sqrt(statistic / 2))


def test_unit_mcnemar_chi_square_from_25_discordant_pairs() -> None:
    # b = 20, c = 8: (|20 - 8| - 1)^2 / 28 = 121 / 28 = 4.321429.
    row = compare_one(*discordant_frames(4, 20, 8, 6), outcomes="exact")
    assert row["paired_test"] == "mcnemar_chi2"
    assert row["paired_p_value"] == pytest.approx(chi_square_1_sf(121 / 28), rel=1e-9)
    assert row["paired_p_value"] == pytest.approx(0.037635, abs=1e-6)
    assert "McNemar chi-square p=0.038, b=20, c=8" in row["verdict"]
    # (8 - 20) / 38 pairs = -0.316.
    assert row["verdict"].startswith("exact: variant worse than baseline by -0.32 ")
    # 24 discordant pairs are still tested exactly: 2 P(X <= 7 | 24, 1/2).
    row = compare_one(*discordant_frames(0, 17, 7, 0), outcomes="exact")
    exact_p = 2 * sum(math.comb(24, k) for k in range(8)) / 2**24
    assert (row["paired_test"], row["paired_p_value"]) == ("mcnemar_exact", pytest.approx(exact_p))
    # A variant better by as many pairs at 25 discordant: chi-square, (|3 - 22| - 1)^2 / 25.
    row = compare_one(*discordant_frames(1, 3, 22, 1), outcomes="exact")
    assert row["paired_test"] == "mcnemar_chi2"
    assert row["paired_p_value"] == pytest.approx(chi_square_1_sf(18**2 / 25), rel=1e-9)
    assert row["verdict"].startswith("exact: variant better than baseline by +0.70 ")


@pytest.mark.parametrize(("discordant", "test"), [(6, "mcnemar_exact"), (30, "mcnemar_chi2")])
def test_unit_mcnemar_with_as_many_discordant_pairs_each_way_gives_p_1(
    discordant: int, test: str
) -> None:
    # The continuity correction stops at 0: (|15 - 15| - 1)^2 would be 1, not 0.
    row = compare_one(*discordant_frames(3, discordant, discordant, 2), outcomes="exact")
    assert (row["paired_test"], row["paired_p_value"], row["significant"]) == (test, 1.0, False)
    assert row["pass_rate_difference"] == 0
    assert row["verdict"].startswith("exact: no significant difference (+0.00, pass rate ")


def test_unit_without_discordant_pairs_mcnemar_is_undetermined() -> None:
    row = compare_one(*discordant_frames(4, 0, 0, 3), outcomes="exact")
    assert row["paired_test"] == "mcnemar_exact"
    assert pd.isna(row["paired_p_value"])
    assert pd.isna(row["significant"])
    assert (row["paired_rows"], row["pass_rate_difference"]) == (7, 0)
    assert (row["baseline_pass_rate"], row["variant_pass_rate"]) == (4 / 7, 4 / 7)
    assert row["verdict"] == (
        "exact: not enough data to compare (no discordant pairs: both sides agree on all 7)"
    )


def test_unit_without_pairs_mcnemar_is_not_tried() -> None:
    # Keys 0 and 1 are an error on one side; key 2 is only in the baseline.
    row = compare_one(
        outcome_rows(["error", "pass", "pass"]), outcome_rows(["fail", "error"]), outcomes="exact"
    )
    assert (row["paired_rows"], row["error_pairs"], row["paired_test"]) == (0, 2, None)
    assert (
        nulls_as_none(
            pd.Series([row[c] for c in ("paired_p_value", "baseline_pass_rate", "significant")])
        )
        == [None] * 3
    )
    assert pd.isna(row["baseline_pass_rate_ci_low"])
    assert row["verdict"] == (
        "exact: not enough data to compare (no key has a pass or fail on both sides; "
        "2 error pairs left out)"
    )


def test_unit_repeats_collapse_to_their_majority_and_ties_are_left_out() -> None:
    keys = [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # Baseline: key 0 pass (2 of 3), 1 fail, 2 tie, 3 pass (its error repeat left out), 4 error.
    baseline = ["pass", "fail", "pass", "fail", "fail", "pass", "fail", "error", "pass"]
    baseline += ["error", "error"]
    variant = ["fail", "fail", "pass", "pass", "pass", "pass", "pass", "fail", "fail"]
    variant += ["pass", "pass"]
    assert collapse_outcomes(
        outcome_rows(baseline, keys), "exact_outcome", ["_row"], "b"
    ).tolist() == [
        "pass",
        "fail",
        "tie",
        "pass",
        "error",
    ]
    row = compare_one(outcome_rows(baseline, keys), outcome_rows(variant, keys), outcomes="exact")
    # Pairs kept: key 0 (pass, fail) and 1 (fail, pass) and 3 (pass, fail); key 2 tied, 4 error.
    assert (row["paired_rows"], row["tied_pairs"], row["error_pairs"]) == (3, 1, 1)
    assert (row["baseline_only_passed"], row["variant_only_passed"]) == (2, 1)
    assert row["paired_p_value"] == 1.0
    assert row["verdict"].endswith("b=2, c=1; 1 error pairs left out, 1 tied keys left out)")


def test_unit_outcomes_pair_by_a_key_of_several_columns() -> None:
    baseline = pd.DataFrame(
        {"item": [1, 1, 2], "lang": ["en", "fr", "en"], "exact_outcome": ["pass", "pass", "fail"]}
    )
    variant = baseline.assign(exact_outcome=["fail", "pass", "pass"]).iloc[::-1]
    row = compare_one(baseline, variant, outcomes="exact", key=["item", "lang"])
    counts = ("both_passed", "baseline_only_passed", "variant_only_passed", "both_failed")
    assert [row[c] for c in counts] == [1, 1, 1, 0]


# --- parameters --------------------------------------------------------------------------------


BAD_PARAMETERS = [
    ("score_summary", {"criteria": []}, r"criteria or outcomes: give at least one name"),
    ("score_summary", {"criteria": ["a", "a"]}, r"criteria lists 'a' twice"),
    ("score_summary", {"criteria": [""]}, r"criteria.0: String should have at least 1 character"),
    ("score_summary", {"criteria": "a", "score_column": "score"}, r"must contain \{criterion\}"),
    (
        "score_summary",
        {"criteria": "a", "score_column": "{criterion}_{x}"},
        r"no other placeholder",
    ),
    (
        "score_summary",
        {"criteria": "a", "score_column": "{criterion"},
        r"must contain .*expected '\}'",
    ),
    ("score_summary", {"criteria": "a", "score_column": "{criterion!r}"}, r"must contain"),
    (
        "score_summary",
        {"criteria": "a", "confidence": 1},
        r"confidence: Input should be less than 1",
    ),
    (
        "score_summary",
        {"criteria": "a", "pass_threshold": "inf"},
        r"pass_threshold: Input should be a finite",
    ),
    ("score_summary", {"criteria": "a", "group_by": "x"}, r"group_by: Extra inputs"),
    ("score_comparison", {"criteria": "a", "key": []}, r"key: List should have at least 1 item"),
    (
        "score_comparison",
        {"criteria": "a", "key": "a_score"},
        r"\['a_score'\] cannot be both a key",
    ),
    (
        "score_comparison",
        {"criteria": "a", "test": "t"},
        r"test: Input should be 'auto', 'welch_t'",
    ),
    ("score_comparison", {"criteria": "a", "alpha": 0}, r"alpha: Input should be greater than 0"),
    (
        "score_comparison",
        {"criteria": "a", "alpha": 0.05, "confidence": 0.9},
        r"confidence 0\.9 and alpha 0\.05 must add up to 1",
    ),
    ("score_comparison", {"columns": ["s"]}, r"columns: Extra inputs"),
    ("score_summary", {}, r"criteria or outcomes: give at least one name"),
    ("score_comparison", {"criteria": []}, r"criteria or outcomes: give at least one name"),
    ("score_summary", {"outcomes": ["a", "a"]}, r"outcomes lists 'a' twice"),
    ("score_summary", {"outcomes": [""]}, r"outcomes.0: String should have at least 1 character"),
    ("score_summary", {"outcomes": "a", "outcome": "b"}, r"outcome: Extra inputs"),
    ("score_comparison", {"outcomes": 3}, r"outcomes: Input should be a valid list"),
    (
        "score_comparison",
        {"outcomes": "a", "key": "a_outcome"},
        r"\['a_outcome'\] cannot be both a key and an outcome column",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("plugin", "params", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_named_before_any_data_moves(
    shared_runtime: PluginRuntime, plugin: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(
        ConfigurationError, match=f"plugin {plugin!r}: invalid parameters: .*{message}"
    ):
        shared_runtime.describe(plugin, params)


@pytest.mark.integration
def test_describe_fills_in_the_defaults(shared_runtime: PluginRuntime) -> None:
    summary = shared_runtime.describe("score_summary", {"criteria": "clarity"})
    assert (summary.kind, summary.clearance, summary.max_proxies) == (
        PluginKind.AGGREGATOR,
        L.SECRET,
        None,
    )
    assert summary.parameters == {
        "criteria": ["clarity"],
        "outcomes": [],
        "score_column": "{criterion}_score",
        "confidence": 0.95,
        "pass_threshold": None,
    }
    comparison = shared_runtime.describe("score_comparison", {"criteria": "clarity"})
    assert (comparison.kind, comparison.min_proxies, comparison.max_proxies) == (
        PluginKind.BASELINE_COMPARISON,
        2,
        2,
    )
    assert comparison.parameters == {
        "criteria": ["clarity"],
        "outcomes": [],
        "score_column": "{criterion}_score",
        "confidence": 0.95,
        "key": ["_row"],
        "alpha": 0.05,
        "test": "auto",
        "higher_is_better": True,
    }


def test_unit_scipy_warnings_are_silenced_only_inside_the_plugins() -> None:
    before = list(warnings.filters)
    row = compare_one(*unpaired([3, 3], [4, 4]), criteria="q", test="welch_t")
    assert math.isnan(row["statistic"])  # scipy warned here (precision loss, t = inf)
    assert warnings.filters == before
