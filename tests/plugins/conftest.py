"""Plugin tests run through the orchestrator tests' real standalone daemon and worker runtime."""

from __future__ import annotations

from typing import Any

import pandas as pd

from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.security import SecureDataFrame, SecurityLevel
from tests.orchestrator.conftest import authority, daemon, make_frame, shared_runtime

__all__ = ["authority", "daemon", "make_frame", "nulls_as_none", "run_one", "shared_runtime"]


def nulls_as_none(values: pd.Series[Any]) -> list[Any]:
    return [None if pd.isna(value) else value for value in values]


def run_one(
    runtime: PluginRuntime,
    plugin: str,
    params: dict[str, Any],
    frames: list[SecureDataFrame],
    plan_level: SecurityLevel = SecurityLevel.OFFICIAL,
) -> SecureDataFrame:
    """Run ``plugin`` once in a worker; its one produced frame, whose seal verifies."""
    result = runtime.run(plugin, params, frames, chunk_id="c1", plan_level=plan_level)
    (produced,) = result.produced
    assert produced.verify_seal() > 0
    return produced
