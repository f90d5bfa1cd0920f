"""The built-in validators, score statistics and early stop, and every built-in's registration.

Each plugin runs once through a real worker (standalone mode, the real daemon) over the frame shape
the suite runner produces; the pure helpers get fast unit tests; bad parameters are reported by
``runtime.describe`` before any data moves. ``score_summary`` and ``score_comparison`` are tested
in ``test_statistics.py``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest

from elspeth.errors import ConfigurationError
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.plugins import PluginKind
from elspeth.plugins._declaration import validate_parameters
from elspeth.plugins._registry import PluginRegistry
from elspeth.plugins.builtin._score_statistics import summarise, summarise_frame
from elspeth.plugins.builtin._threshold_early_stop import (
    ThresholdEarlyStop,
    ThresholdEarlyStopParameters,
    first_stop_row,
)
from elspeth.plugins.builtin._validators import schema_location, schema_reason
from elspeth.security import SecurityLevel
from tests.orchestrator.conftest import MakeFrame
from tests.plugins.conftest import nulls_as_none, run_one

L = SecurityLevel
NAN = math.nan
SECRET_TEXT = "patient Jane Q. Example"
SCORE_SCHEMA = {
    "type": "object",
    "required": ["score"],
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
}


def llm_frame(responses: list[str | None], outcomes: list[str]) -> pd.DataFrame:
    """The runner's shape for one criterion ``quality``: dataset column, response, outcome, _row."""
    return pd.DataFrame(
        {
            "text": [f"item {i}" for i in range(len(responses))],
            "quality_response": responses,
            "quality_outcome": outcomes,
            "_row": range(len(responses)),
        }
    )


# --- through a real worker -----------------------------------------------------------------


@pytest.mark.integration
def test_json_schema_validator_gives_a_verdict_and_a_reason_without_the_value(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = llm_frame(
        [
            json.dumps({"score": 4}),
            "Sure! {not json",
            json.dumps({"note": SECRET_TEXT}),
            json.dumps({"score": SECRET_TEXT}),
            json.dumps({"score": 9}),
            None,
            "timeout",
        ],
        ["ok", "ok", "ok", "ok", "ok", "ok", "error"],
    )
    produced = run_one(
        shared_runtime,
        "json_schema_validator",
        {"source": "quality_response", "schema": SCORE_SCHEMA},
        [make_frame(data)],
    )
    out = produced.data
    assert nulls_as_none(out["quality_response_valid"]) == [
        True,
        False,
        False,
        False,
        False,
        None,
        None,
    ]
    assert nulls_as_none(out["quality_response_valid_reason"]) == [
        None,
        "invalid JSON",
        "schema: 'score' is a required property",
        "schema: score: must be of type 'integer'",
        "schema: score: must be <= 5",
        "missing",
        "outcome error",
    ]
    assert list(out.columns[:4]) == list(data.columns)
    assert produced.security_level is L.OFFICIAL


@pytest.mark.integration
def test_regex_validator_modes_and_explicit_output(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    frame = make_frame(
        llm_frame(["YES", "yes, because", "I think yes", None], ["ok", "ok", "ok", "ok"])
    )
    verdicts = {}
    for mode in ("match", "search", "fullmatch"):
        params = {
            "source": "quality_response",
            "pattern": "yes|no",
            "mode": mode,
            "ignore_case": True,
            "output": "answered",
        }
        out = run_one(shared_runtime, "regex_validator", params, [frame]).data
        verdicts[mode] = nulls_as_none(out["answered"])
        if mode == "fullmatch":
            assert nulls_as_none(out["answered_reason"]) == [
                None,
                "does not match the pattern as a whole",
                "does not match the pattern as a whole",
                "missing",
            ]
    assert verdicts == {
        "match": [True, True, False, None],
        "search": [True, True, True, None],
        "fullmatch": [True, False, False, None],
    }


@pytest.mark.integration
def test_score_statistics_over_chunks_of_two_levels_with_groups(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    first = pd.DataFrame({"region": ["N", "N", "S"], "score": [1.0, 3.0, NAN], "_row": [0, 1, 2]})
    second = pd.DataFrame({"region": ["S", "N", "S"], "score": [4.0, 5.0, 2.0], "_row": [3, 4, 5]})
    frames = [make_frame(first, L.OFFICIAL), make_frame(second, L.OFFICIAL_SENSITIVE)]
    params = {"columns": ["score"], "group_by": "region"}
    produced = run_one(
        shared_runtime, "score_statistics", params, frames, plan_level=L.OFFICIAL_SENSITIVE
    )
    assert produced.security_level is L.OFFICIAL_SENSITIVE
    summary = produced.data.set_index("region")
    assert summary.loc["N", ["count", "missing", "mean", "min", "median", "max"]].tolist() == [
        3,
        0,
        3.0,
        1.0,
        3.0,
        5.0,
    ]
    assert summary.loc["S", ["count", "missing", "mean"]].tolist() == [2, 1, 3.0]
    assert summary.loc["N", "std"] == pytest.approx(2.0)


@pytest.mark.integration
def test_threshold_early_stop_marks_the_first_row_where_the_rule_holds(
    shared_runtime: PluginRuntime, make_frame: MakeFrame
) -> None:
    data = pd.DataFrame({"score": [5.0, 1.0, NAN, 1.0, 1.0, 5.0], "_row": range(6)})
    params = {"column": "score", "threshold": 2, "direction": "below", "fraction": 0.5}
    stopping = run_one(
        shared_runtime, "threshold_early_stop", {**params, "min_rows": 3}, [make_frame(data)]
    )
    assert stopping.data["_early_stop"].tolist() == [False, False, False, True, False, False]
    assert stopping.data.drop(columns="_early_stop").equals(data)
    earlier_rule = [False, True, False, False, False, False]
    strict = run_one(
        shared_runtime,
        "threshold_early_stop",
        {**params, "fraction": 0.9, "min_rows": 3},
        [make_frame(data.assign(_early_stop=earlier_rule))],
    )
    assert strict.data["_early_stop"].tolist() == earlier_rule


BAD_PARAMETERS = [
    (
        "json_schema_validator",
        {"source": "r", "schema": {"type": "nonsense"}},
        r"schema: Value error, not a valid JSON Schema at type",
    ),
    ("json_schema_validator", {"source": "r"}, r"schema: Field required"),
    ("regex_validator", {"source": "r", "pattern": "(unclosed"}, r"pattern: .*not a valid regex"),
    ("regex_validator", {"source": "r", "pattern": "x", "mode": "find"}, r"mode: Input should"),
    ("regex_validator", {"source": "r", "pattern": "x", "output": "r"}, r"would overwrite"),
    ("score_statistics", {"columns": []}, r"columns: List should have at least 1 item"),
    ("score_statistics", {"columns": ["a", "a"]}, r"columns: Value error, columns lists 'a'"),
    ("score_statistics", {"columns": "a", "group_by": "mean"}, r"group_by \['mean'\] would"),
    (
        "threshold_early_stop",
        {"column": "s", "threshold": 1, "direction": "up", "fraction": 0.5},
        r"direction: Input should be 'above' or 'below'",
    ),
    (
        "threshold_early_stop",
        {"column": "s", "threshold": 1, "direction": "above", "fraction": 0},
        r"fraction: Input should be greater than 0",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("plugin", "params", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_named_before_any_data_moves(
    shared_runtime: PluginRuntime, plugin: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"plugin {plugin!r}: invalid parameters: .*"):
        shared_runtime.describe(plugin, params)
    with pytest.raises(ConfigurationError, match=message):
        shared_runtime.describe(plugin, params)


@pytest.mark.integration
def test_describe_reports_kinds_and_resolved_defaults(shared_runtime: PluginRuntime) -> None:
    info = shared_runtime.describe(
        "json_schema_validator", {"source": "quality_response", "schema": SCORE_SCHEMA}
    )
    assert info.kind is PluginKind.VALIDATOR
    assert info.clearance is L.SECRET
    assert info.parameters == {
        "source": "quality_response",
        "output": "quality_response_valid",
        "outcome": "quality_outcome",
        "schema": SCORE_SCHEMA,
    }
    statistics = shared_runtime.describe("score_statistics")
    assert (statistics.kind, statistics.max_proxies) == (PluginKind.AGGREGATOR, None)


# --- pure helpers (no worker) ----------------------------------------------------------------


def test_unit_every_builtin_is_registered_under_its_declared_name() -> None:
    registry = PluginRegistry(entry_points=False)
    kinds = {name: registry.get(name).kind for name in registry.names()}
    assert kinds == {
        "answer_scorer": PluginKind.ROW_PLUGIN,
        "json_schema_validator": PluginKind.VALIDATOR,
        "regex_validator": PluginKind.VALIDATOR,
        "repeat_reducer": PluginKind.AGGREGATOR,
        "score_comparison": PluginKind.BASELINE_COMPARISON,
        "score_extractor": PluginKind.ROW_PLUGIN,
        "score_statistics": PluginKind.AGGREGATOR,
        "score_summary": PluginKind.AGGREGATOR,
        "semantic_similarity": PluginKind.ROW_PLUGIN,
        "threshold_early_stop": PluginKind.EARLY_STOP,
    }


def test_unit_output_defaults_only_derive_an_outcome_column_from_a_response_column() -> None:
    registry = PluginRegistry(entry_points=False)
    plugin = registry.get("regex_validator")
    plain = validate_parameters(plugin, {"source": "comment", "pattern": "x"})
    assert (plain.output, plain.outcome, plain.reason_column) == (
        "comment_valid",
        None,
        "comment_valid_reason",
    )
    opted_out = validate_parameters(
        plugin, {"source": "quality_response", "pattern": "x", "outcome": None}
    )
    assert opted_out.outcome is None


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ([], ""),
        (["properties", "score"], "score"),
        (["properties", "scores", "properties", "overall"], "scores.overall"),
        (["properties", "tags", "items", 0], "tags.items.0"),
        (["properties", "properties"], "properties"),
    ],
)
def test_unit_schema_location(path: list[str | int], location: str) -> None:
    assert schema_location(path) == location


@pytest.mark.parametrize(
    ("schema", "document", "reason"),
    [
        ({"required": ["a", "b"]}, {"b": SECRET_TEXT}, "schema: 'a' is a required property"),
        (
            {"properties": {"tags": {"maxItems": 1}}},
            {"tags": [SECRET_TEXT, SECRET_TEXT]},
            "schema: tags: must have at most 1 items",
        ),
        (
            {"additionalProperties": False},
            {SECRET_TEXT: 1},
            "schema: has properties the schema does not allow",
        ),
        ({"enum": ["low", "high"]}, SECRET_TEXT, "schema: must be one of the allowed values"),
        ({"not": {"type": "string"}}, SECRET_TEXT, "schema: fails 'not'"),
    ],
)
def test_unit_schema_reasons_never_quote_the_data(
    schema: dict[str, Any], document: Any, reason: str
) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(document)
    )
    assert error is not None
    assert SECRET_TEXT in error.message or schema.get("required")
    assert schema_reason(error) == reason


def test_unit_summarise_counts_non_numbers_as_missing() -> None:
    stats = summarise(pd.Series([1, "2", None, "n/a", 5], dtype=object))
    assert (stats["count"], stats["missing"]) == (3, 2)
    assert (stats["min"], stats["p25"], stats["median"], stats["p75"], stats["max"]) == (
        1.0,
        1.5,
        2.0,
        3.5,
        5.0,
    )
    assert stats["std"] == pytest.approx(np.std([1, 2, 5], ddof=1))
    empty = summarise(pd.Series([None, None], dtype=object))
    assert (empty["count"], empty["missing"]) == (0, 2)
    assert all(math.isnan(empty[k]) for k in ("mean", "std", "min", "median", "max"))


def test_unit_summarise_frame_keeps_a_null_group_and_an_empty_frame_keeps_its_columns() -> None:
    data = pd.DataFrame({"g": ["a", None, "a"], "x": [1.0, 2.0, 3.0], "y": [NAN, 1.0, 1.0]})
    summary = summarise_frame(data, ["x", "y"], ["g"])
    assert summary[["column", "count"]].values.tolist() == [["x", 2], ["y", 1], ["x", 1], ["y", 1]]
    assert summary["g"].isna().tolist() == [False, False, True, True]
    empty = summarise_frame(data.iloc[:0], ["x"], [])
    assert list(empty.columns) == [
        "column",
        "count",
        "missing",
        "mean",
        "std",
        "min",
        "p25",
        "median",
        "p75",
        "max",
    ]
    assert empty["count"].tolist() == [0]


def stop_rule(**overrides: Any) -> ThresholdEarlyStopParameters:
    params = {"column": "s", "threshold": 3.0, "direction": "above", "fraction": 1.0, **overrides}
    parameters: ThresholdEarlyStopParameters = validate_parameters(ThresholdEarlyStop, params)
    return parameters


@pytest.mark.parametrize(
    ("scores", "overrides", "row"),
    [
        ([4.0, 1.0], {}, 0),
        ([1.0, 4.0], {}, None),
        ([4.0, 3.0, 4.0], {}, 0),
        ([4.0, NAN, 4.0], {"min_rows": 2}, 2),
        ([1.0, 4.0, 4.0, 1.0], {"fraction": 0.5}, 1),
        ([1.0, 4.0, 4.0], {"fraction": 0.5, "min_rows": 3}, 2),
        ([3.0, 3.0], {"fraction": 0.1}, None),
        ([5.0, 1.0, 2.0], {"direction": "below", "fraction": 0.6}, 2),
        ([1.0] * 7 + [4.0] * 3, {"direction": "below", "fraction": 0.7, "min_rows": 10}, 9),
        ([], {}, None),
    ],
)
def test_unit_first_stop_row(
    scores: list[float], overrides: dict[str, Any], row: int | None
) -> None:
    assert first_stop_row(np.array(scores, dtype=np.float64), stop_rule(**overrides)) == row
