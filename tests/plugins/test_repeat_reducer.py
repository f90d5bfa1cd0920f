"""The ``repeat_reducer`` aggregator: each reducer with hand-computed values, error repeats,
parameters, and runs through a real worker (standalone mode, the real daemon)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from elspeth.errors import ConfigurationError
from elspeth.orchestrator import PluginFailedError
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.plugins import PluginKind
from elspeth.plugins._declaration import validate_parameters
from elspeth.plugins.builtin._repeat_reducer import (
    OUTPUT_DTYPES,
    Reduced,
    Reduction,
    RepeatReducer,
    RepeatReducerParameters,
    RepeatScore,
    mode_outcome,
    mode_value,
    pass_at_k,
    reduce_frame,
    reduce_repeats,
)
from elspeth.security import SecurityLevel
from tests.orchestrator.conftest import MakeFrame, wait_for_text
from tests.plugins.conftest import nulls_as_none, run_one

P = RepeatScore(1.0, True)
F = RepeatScore(0.0, False)
E = None  # an error repeat


def params(*reductions: dict[str, Any]) -> RepeatReducerParameters:
    parameters: RepeatReducerParameters = validate_parameters(
        RepeatReducer, {"reductions": list(reductions)}
    )
    return parameters


def reduction(**fields: Any) -> Reduction:
    return params(fields).reductions[0]


def reduce(scores: Sequence[RepeatScore | None], **fields: Any) -> Reduced:
    return reduce_repeats(reduction(**fields), scores)


# --- pass@k --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 0.4),  # 1 - C(3,1)/C(5,1) = 1 - 3/5
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (5, 0, 1, 0.0),
        (5, 0, 5, 0.0),
        (5, 4, 2, 1.0),  # n - c = 1 < k: every draw of 2 includes a pass
        (5, 5, 5, 1.0),
        (10, 3, 3, 1 - 35 / 120),  # C(7,3)=35, C(10,3)=120
        (1, 1, 1, 1.0),
    ],
)
def test_unit_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-15)


def test_unit_pass_at_k_at_1_is_the_pass_rate_and_large_n_is_exact() -> None:
    for n in range(1, 12):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-15)
    # 1 - C(190, 100) / C(200, 100): the naive float ratio of two ~1e58 integers is fine here,
    # but the rational form is exact; the value below is 1 - prod_{i=0..9} (100 - i)/(200 - i).
    expected = 1 - math.prod((100 - i) / (200 - i) for i in range(10))
    assert pass_at_k(200, 10, 100) == pytest.approx(expected, rel=1e-12)


def test_unit_pass_at_k_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match=r"n=2, c=1, k=3"):
        pass_at_k(2, 1, 3)


def test_unit_pass_at_k_reducer_over_a_row() -> None:
    row = reduce([P, F, P, F, F], prefix="exact", reducer="pass_at_k", k=2)
    assert row.value == pytest.approx(0.7)
    assert row.outcome is None  # a probability, not a verdict
    assert (row.repeats, row.used, row.errors, row.passed) == (5, 5, 0, 2)
    assert row.explanation == "pass@2 over 5 repeats, 2 passed"
    assert reduce([F, F, F], prefix="exact", reducer="pass_at_k", k=2).value == 0.0
    assert reduce([P, P, F], prefix="exact", reducer="pass_at_k", k=2).value == 1.0


def test_unit_pass_at_k_excludes_errors_and_errors_below_k_are_an_error_row() -> None:
    # Errors excluded: n = 5 usable (2 pass), not 7: 0.7 again, and the errors are counted.
    row = reduce([P, E, F, P, E, F, F], prefix="exact", reducer="pass_at_k", k=2)
    assert row.value == pytest.approx(0.7)
    assert (row.repeats, row.used, row.errors, row.passed) == (7, 5, 2, 2)
    assert row.explanation == "pass@2 over 5 repeats, 2 passed; 2 error repeats excluded"
    short = reduce([P, E, E], prefix="exact", reducer="pass_at_k", k=2)
    assert (short.value, short.outcome) == (None, "error")
    assert short.explanation == "only 1 usable repeat (2 errors), pass@2 needs 2"


# --- at_least_k ----------------------------------------------------------------------------


def test_unit_at_least_k_passes_fails_and_leaves_undecided_rows_to_the_errors() -> None:
    passing = reduce([P, F, P, F], prefix="x", reducer="at_least_k", k=2)
    assert (passing.value, passing.outcome, passing.passed) == (1.0, "pass", 2)
    assert passing.explanation == "2 of 4 repeats passed, 2 needed"
    failing = reduce([P, F, F, F], prefix="x", reducer="at_least_k", k=2)
    assert (failing.value, failing.outcome) == (0.0, "fail")
    # A pass despite an error: the error could not have changed it.
    assert reduce([P, P, E], prefix="x", reducer="at_least_k", k=2).outcome == "pass"
    # A fail despite an error: even a passing error repeat would leave 1 < 3.
    failed = reduce([F, F, E], prefix="x", reducer="at_least_k", k=2)
    assert (failed.outcome, failed.errors) == ("fail", 1)
    assert failed.explanation == "0 of 2 repeats passed, 2 needed; 1 error repeat excluded"
    # Undecided: 1 pass, and the 1 error repeat decides whether 2 passed. Never a silent fail.
    open_row = reduce([P, F, E], prefix="x", reducer="at_least_k", k=2)
    assert (open_row.value, open_row.outcome) == (None, "error")
    assert open_row.explanation == "1 of 2 repeats passed, 2 needed; undecided with 1 error repeat"


# --- mean, max, mode -----------------------------------------------------------------------


def test_unit_mean_and_max_of_values_excluding_errors() -> None:
    scores = [RepeatScore(0.8, True), E, RepeatScore(0.2, False), RepeatScore(0.5, True)]
    mean = reduce(scores, prefix="f1", reducer="mean")
    assert mean.value == pytest.approx(0.5)  # (0.8 + 0.2 + 0.5) / 3, not / 4
    assert mean.outcome is None  # the scorer's pass rule is not known for a mean
    assert (mean.repeats, mean.used, mean.errors, mean.passed) == (4, 3, 1, 2)
    assert mean.explanation == "mean of 3 repeats; 1 error repeat excluded"
    best = reduce(scores, prefix="f1", reducer="max")
    assert (best.value, best.outcome) == (0.8, "pass")  # best of n: a pass if any passed
    assert reduce([F, F], prefix="f1", reducer="max").outcome == "fail"


def test_unit_mode_of_values_and_outcomes_with_ties_to_the_smallest_and_to_fail() -> None:
    assert mode_value([0.5, 1.0, 0.5, 0.0]) == 0.5
    assert mode_value([1.0, 0.0, 1.0, 0.0]) == 0.0  # tie: the smallest value
    assert mode_value([3.0]) == 3.0
    assert mode_outcome(3, 1) == "pass"
    assert mode_outcome(1, 3) == "fail"
    assert mode_outcome(2, 2) == "fail"  # tie: a split vote is no majority for passing
    row = reduce([P, F, P, E], prefix="exact", reducer="mode")
    assert (row.value, row.outcome, row.passed) == (1.0, "pass", 2)
    assert row.explanation == "mode of 3 repeats: 2 pass, 1 fail; 1 error repeat excluded"
    tie = reduce([P, F, E, E], prefix="exact", reducer="mode")
    assert (tie.value, tie.outcome) == (0.0, "fail")


def test_unit_value_column_verdicts_come_from_pass_threshold() -> None:
    scores = [RepeatScore(4.0, None), RepeatScore(2.0, None), RepeatScore(4.0, None)]
    plain = reduce(scores, column="score", reducer="mean")
    assert plain.value == pytest.approx(10 / 3)
    assert (plain.outcome, plain.passed) == (None, None)  # no threshold: no verdicts
    assert reduce(scores, column="score", reducer="mode").value == 4.0
    assert reduce(scores, column="score", reducer="mode").outcome is None
    judged = reduce(
        [RepeatScore(4.0, True), RepeatScore(2.0, False), RepeatScore(4.0, True)],
        column="score",
        reducer="mean",
        pass_threshold=3.5,
    )
    assert (judged.outcome, judged.passed) == ("fail", 2)  # mean 3.33 < 3.5


# --- all-error rows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reducer", "k"),
    [("mean", None), ("mode", None), ("max", None), ("pass_at_k", 1), ("at_least_k", 1)],
)
def test_unit_a_row_whose_repeats_are_all_errors_is_an_error(reducer: str, k: int | None) -> None:
    fields: dict[str, Any] = {"prefix": "exact", "reducer": reducer}
    if k is not None:
        fields["k"] = k
    row = reduce([E, E, E], **fields)
    assert (row.value, row.outcome) == (None, "error")
    assert row.explanation == "all 3 repeats are errors"
    assert (row.repeats, row.used, row.errors, row.passed) == (3, 0, 3, 0)


# --- frames --------------------------------------------------------------------------------


def repeated(outcomes: dict[int, list[str | None]], prefix: str = "exact") -> pd.DataFrame:
    """A scorer's frame: rows ``_row`` x ``_repeat`` with values 1/0/null from the outcomes."""
    records = [
        {
            "_row": row,
            "_repeat": repeat,
            f"{prefix}_value": {"pass": 1.0, "fail": 0.0}.get(outcome or ""),
            f"{prefix}_outcome": outcome,
            f"{prefix}_explanation": "x",
        }
        for row, row_outcomes in outcomes.items()
        for repeat, outcome in enumerate(row_outcomes)
    ]
    return pd.DataFrame(records)


def test_unit_reduce_frame_gives_one_row_per_row_in_order_with_nullable_columns() -> None:
    data = repeated(
        {
            2: ["pass", "fail", "fail", "pass", "fail"],
            0: ["error", "error", "error", "error", "error"],
            1: ["pass", "pass", "error", None, "fail"],
        }
    ).sample(frac=1, random_state=3)  # chunks may arrive in any order
    out = reduce_frame(
        data,
        params(
            {"prefix": "exact", "reducer": "pass_at_k", "k": 2},
            {"prefix": "exact", "reducer": "mean", "output": "exact_mean"},
        ),
    )
    assert list(out.columns) == [
        "_row",
        *(f"exact{suffix}" for suffix in OUTPUT_DTYPES),
        *(f"exact_mean{suffix}" for suffix in OUTPUT_DTYPES),
    ]
    assert out["_row"].tolist() == [0, 1, 2]
    # Row 1: a null outcome is an error repeat too; 3 usable (2 pass): 1 - C(1,2)/C(3,2) = 1.
    assert nulls_as_none(out["exact_value"]) == [None, 1.0, pytest.approx(0.7)]
    assert nulls_as_none(out["exact_outcome"]) == ["error", None, None]
    assert out["exact_explanation"][0] == "all 5 repeats are errors"
    assert out["exact_repeats"].tolist() == [5, 5, 5]
    assert out["exact_used"].tolist() == [0, 3, 5]
    assert out["exact_errors"].tolist() == [5, 2, 0]
    assert out["exact_passed"].tolist() == [0, 2, 2]
    assert nulls_as_none(out["exact_mean_value"]) == [None, pytest.approx(2 / 3), 0.4]
    assert {column: str(out[column].dtype) for column in out.columns[1:8]} == {
        f"exact{suffix}": dtype for suffix, dtype in OUTPUT_DTYPES.items()
    }


def test_unit_a_frame_without_repeat_reduces_each_row_as_its_own_single_repeat() -> None:
    data = repeated({0: ["pass"], 1: ["fail"], 2: ["error"]}).drop(columns="_repeat")
    out = reduce_frame(data, params({"prefix": "exact", "reducer": "at_least_k", "k": 1}))
    assert nulls_as_none(out["exact_outcome"]) == ["pass", "fail", "error"]
    assert out["exact_repeats"].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match=r"k=2 but no row has more than 1 repeat$"):
        reduce_frame(data, params({"prefix": "exact", "reducer": "pass_at_k", "k": 2}))


def test_unit_k_above_the_repeats_present_is_an_error_naming_it() -> None:
    data = repeated({0: ["pass", "fail", "pass"], 1: ["pass", "pass"]})
    with pytest.raises(
        ValueError,
        match=r"reductions 0 \(at_least_k of 'exact'\): k=4 but no row has more than 3 repeats",
    ):
        reduce_frame(data, params({"prefix": "exact", "reducer": "at_least_k", "k": 4}))
    # k=3: the row with 2 repeats is an error row, not a failure of the call.
    out = reduce_frame(data, params({"prefix": "exact", "reducer": "pass_at_k", "k": 3}))
    assert nulls_as_none(out["exact_outcome"]) == [None, "error"]
    assert out["exact_value"].tolist()[0] == 1.0


def test_unit_value_column_nulls_are_error_repeats() -> None:
    data = pd.DataFrame(
        {"_row": [0, 0, 0, 1], "_repeat": [0, 1, 2, 0], "s": [4.0, None, 2.0, "n/a"]}
    )
    out = reduce_frame(data, params({"column": "s", "reducer": "max", "pass_threshold": 3}))
    assert nulls_as_none(out["s_value"]) == [4.0, None]
    assert nulls_as_none(out["s_outcome"]) == ["pass", "error"]
    assert out["s_errors"].tolist() == [1, 1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"_row": [0], "exact_outcome": ["pass"]}), r"\['exact_value'\] not in"),
        (pd.DataFrame({"exact_value": [1.0], "exact_outcome": ["pass"]}), r"\['_row'\] not in"),
        (
            pd.DataFrame(
                {"_row": [0, 0], "_repeat": [1, 1], "exact_value": 1.0, "exact_outcome": "pass"}
            ),
            r"1 row\(s\) repeat a _row/_repeat key",
        ),
        (
            pd.DataFrame({"_row": [0], "exact_value": [1.0], "exact_outcome": ["ok"]}),
            r"'exact_outcome' has 1 outcome\(s\) other than \['error', 'fail', 'pass'\]",
        ),
    ],
)
def test_unit_bad_frames_are_errors_naming_columns(data: pd.DataFrame, message: str) -> None:
    with pytest.raises((KeyError, ValueError), match=message):
        reduce_frame(data, params({"prefix": "exact", "reducer": "mean"}))


def test_unit_an_empty_frame_reduces_to_an_empty_frame() -> None:
    out = reduce_frame(
        repeated({}).reindex(columns=["_row", "_repeat", "exact_value", "exact_outcome"]),
        params({"prefix": "exact", "reducer": "pass_at_k", "k": 3}),
    )
    assert out.empty
    assert list(out.columns) == ["_row", *(f"exact{suffix}" for suffix in OUTPUT_DTYPES)]


# --- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reductions", "message"),
    [
        ([{"prefix": "x", "reducer": "median"}], r"reductions\.0\.reducer: Input should be 'mean'"),
        (
            [{"prefix": "x", "reducer": "pass_at_k", "k": 0}],
            r"reductions\.0\.k: .*greater than or equal to 1",
        ),
        (
            [{"prefix": "x", "reducer": "at_least_k", "k": -1}],
            r"reductions\.0\.k: .*greater than or equal to 1",
        ),
        ([{"prefix": "x", "reducer": "pass_at_k"}], r"the pass_at_k reducer requires k"),
        ([{"prefix": "x", "reducer": "mean", "k": 2}], r"k is used only by .*, not by mean"),
        ([{"reducer": "mean"}], r"exactly one of prefix .* and column"),
        ([{"prefix": "x", "column": "y", "reducer": "mean"}], r"exactly one of prefix"),
        (
            [{"prefix": "x", "reducer": "max", "pass_threshold": 0.5}],
            r"pass_threshold applies only to a value column: prefix 'x'",
        ),
        (
            [{"column": "s", "reducer": "at_least_k", "k": 2}],
            r"the at_least_k reducer on column 's' requires pass_threshold",
        ),
        (
            [{"prefix": "x", "reducer": "mean"}, {"prefix": "x", "reducer": "max"}],
            r"reductions 0 and 1 both write 'x_value'; set output",
        ),
        ([{"prefix": "x", "reducer": "mean", "typo": 1}], r"reductions\.0\.typo: Extra inputs"),
        ([], r"reductions: List should have at least 1 item"),
    ],
)
def test_unit_bad_parameters_are_errors_naming_the_field(
    reductions: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(
        ConfigurationError, match=f"plugin 'repeat_reducer': invalid parameters: .*{message}"
    ):
        params(*reductions)
    with pytest.raises(ConfigurationError, match=r"unknown: Extra inputs"):
        validate_parameters(RepeatReducer, {"reductions": reductions, "unknown": 1})


def test_unit_resolved_parameters_validate_again() -> None:
    resolved = params({"prefix": "exact", "reducer": "pass_at_k", "k": 2}).model_dump(mode="json")
    assert resolved["reductions"][0]["output"] == "exact"
    assert params(*resolved["reductions"]).model_dump(mode="json") == resolved


# --- through a real worker -----------------------------------------------------------------


@pytest.mark.integration
def test_repeat_reducer_through_a_worker_over_chunks_of_two_levels(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = repeated(
        {
            0: ["pass", "fail", "pass", "fail", "fail"],
            1: ["fail", "fail", "error", "fail", "fail"],
            2: ["error"] * 5,
        }
    )
    frames = [
        make_frame(data.iloc[:7], SecurityLevel.OFFICIAL),
        make_frame(data.iloc[7:].reset_index(drop=True), SecurityLevel.OFFICIAL_SENSITIVE),
    ]
    parameters = {
        "reductions": [
            {"prefix": "exact", "reducer": "pass_at_k", "k": 2},
            {"prefix": "exact", "reducer": "at_least_k", "k": 1, "output": "any"},
        ]
    }
    info = shared_runtime.describe("repeat_reducer", parameters)
    assert info.kind is PluginKind.AGGREGATOR
    produced = run_one(
        shared_runtime,
        "repeat_reducer",
        parameters,
        frames,
        plan_level=SecurityLevel.OFFICIAL_SENSITIVE,
    )
    assert produced.security_level is SecurityLevel.OFFICIAL_SENSITIVE
    out = produced.data
    assert out["_row"].tolist() == [0, 1, 2]
    assert nulls_as_none(out["exact_value"]) == [pytest.approx(0.7), 0.0, None]
    assert nulls_as_none(out["exact_outcome"]) == [None, None, "error"]
    assert out["exact_errors"].tolist() == [0, 1, 5]
    # Row 1: no pass in 4, and the error repeat decides whether at least 1 passed.
    assert nulls_as_none(out["any_outcome"]) == ["pass", "error", "error"]
    assert out["any_explanation"].tolist()[1:] == [
        "0 of 4 repeats passed, 1 needed; undecided with 1 error repeat",
        "all 5 repeats are errors",
    ]


@pytest.mark.integration
def test_repeat_reducer_k_above_the_repeats_fails_the_call_naming_k(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = repeated({0: ["pass", "fail"], 1: ["pass", "pass"]})
    with pytest.raises(PluginFailedError, match="'repeat_reducer'") as failure:
        shared_runtime.run(
            "repeat_reducer",
            {"reductions": [{"prefix": "exact", "reducer": "pass_at_k", "k": 3}]},
            [make_frame(data)],
            chunk_id="c1",
            plan_level=SecurityLevel.OFFICIAL,
        )
    message = str(failure.value)
    log_path = Path(message.split("error text is in ")[1].split(" (classified", maxsplit=1)[0])
    assert wait_for_text(log_path, "k=3 but no row has more than 2 repeats")
