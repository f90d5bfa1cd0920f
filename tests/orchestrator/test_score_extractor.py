"""The built-in score extractor over real data in a real worker: regex and JSON field paths."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.security import SecurityLevel
from tests.orchestrator.conftest import MakeFrame

pytestmark = pytest.mark.integration


def scores(
    runtime: PluginRuntime, frame_maker: MakeFrame, texts: list[str], **params: object
) -> list[float]:
    frame = frame_maker(pd.DataFrame({"answer": texts}))
    result = runtime.run(
        "score_extractor",
        {"source": "answer", "output": "score", **params},
        [frame],
        chunk_id="s",
        plan_level=SecurityLevel.OFFICIAL,
    )
    return [None if math.isnan(v) else v for v in result.produced[0].data["score"]]  # type: ignore[misc]


def test_regex_with_case_folding(shared_runtime: PluginRuntime, make_frame: MakeFrame) -> None:
    texts = ["Score: 7", "score: 3.5 of 10", "no number", ""]
    assert scores(
        shared_runtime, make_frame, texts, pattern=r"score: ([\d.]+)", ignore_case=True
    ) == [
        7.0,
        3.5,
        None,
        None,
    ]


def test_json_field_path(shared_runtime: PluginRuntime, make_frame: MakeFrame) -> None:
    texts = [
        json.dumps({"scores": {"overall": 4}}),
        json.dumps({"scores": {"overall": "2.5"}}),
        json.dumps({"scores": {"overall": True}}),
        json.dumps({"scores": {}}),
        "not json",
    ]
    assert scores(shared_runtime, make_frame, texts, json_field="scores.overall") == [
        4.0,
        2.5,
        None,
        None,
        None,
    ]
