"""The suite plan takes the stricter of a plugin's two declarations: the clearance in the
settings and the one the plugin declares itself (its worker's description). The effective
clearance is the lower of the two, so data above either one is refused before anything is read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from elspeth.config import load_suite
from elspeth.orchestrator import PluginInfo
from elspeth.plugins import PluginKind
from elspeth.security import SecurityLevel
from elspeth.suite import SuitePlan, build_suite_plan
from tests.suite.conftest import build_suite

L = SecurityLevel
PLUGIN = "score"
COMPONENT = f"base/{PLUGIN}"
#: The data's level: above OFFICIAL, below PROTECTED.
DATA = L.OFFICIAL_SENSITIVE


def declared(clearance: SecurityLevel, output_floor: SecurityLevel | None = None) -> PluginInfo:
    """What a worker describes for a row plugin that declares ``clearance`` itself."""
    return PluginInfo(
        name="score_extractor",
        version="1",
        kind=PluginKind.ROW_PLUGIN,
        clearance=clearance,
        output_floor=output_floor,
        min_proxies=1,
        max_proxies=1,
        parameters=None,
        parameter_schema={},
    )


def plan_for(
    directory: Path,
    settings_clearance: SecurityLevel,
    info: PluginInfo,
    *,
    settings_floor: SecurityLevel | None = None,
) -> SuitePlan:
    """One experiment: DATA-level rows, a PROTECTED model and sink, and one row plugin whose
    settings say ``settings_clearance`` and whose worker says ``info``."""
    suite = build_suite(directory / "suite", None, rows=2)
    settings = suite.settings
    settings["datasource"].update(classification=DATA.name, clearance=DATA.name)
    settings["models"]["loopback"]["clearance"] = L.PROTECTED.name
    settings["sinks"]["results"]["clearance"] = L.PROTECTED.name
    plugin = {
        "plugin": "score_extractor",
        "clearance": settings_clearance.name,
        "params": {"source": "quality_response", "json_field": "score", "output": "quality"},
    }
    if settings_floor is not None:
        plugin["output_floor"] = settings_floor.name
    settings["plugins"] = {PLUGIN: plugin}
    settings["defaults"]["row_plugins"] = [PLUGIN]
    return build_suite_plan(load_suite(suite.write()), {PLUGIN: info})


@pytest.mark.parametrize(
    ("settings_clearance", "plugin_clearance"),
    [(L.PROTECTED, L.OFFICIAL), (L.OFFICIAL, L.PROTECTED)],
    ids=["settings-higher", "plugin-higher"],
)
def test_data_between_the_two_clearances_is_refused(
    tmp_path: Path, settings_clearance: SecurityLevel, plugin_clearance: SecurityLevel
) -> None:
    plan = plan_for(tmp_path, settings_clearance, declared(plugin_clearance)).plan

    assert not plan.ok
    [violation] = plan.violations
    assert (violation.component, violation.kind) == (COMPONENT, "row_plugin")
    assert (violation.clearance, violation.incoming) == (L.OFFICIAL, DATA)
    [entry] = [e for e in plan.entries if e.component.name == COMPONENT]
    assert entry.component.clearance is L.OFFICIAL
    assert not entry.allowed


@pytest.mark.parametrize("level", [DATA, L.PROTECTED])
def test_data_at_or_below_both_clearances_passes(tmp_path: Path, level: SecurityLevel) -> None:
    """The control: the same suite passes once both clearances reach the data."""
    plan = plan_for(tmp_path, level, declared(level)).plan

    assert plan.ok, [v.describe() for v in plan.violations]
    [entry] = [e for e in plan.entries if e.component.name == COMPONENT]
    assert entry.component.clearance is level
    assert entry.allowed


@pytest.mark.parametrize(
    ("settings_floor", "plugin_floor"),
    [(DATA, L.PROTECTED), (L.PROTECTED, DATA), (None, L.PROTECTED), (L.PROTECTED, None)],
    ids=["plugin-higher", "settings-higher", "plugin-only", "settings-only"],
)
def test_the_higher_output_floor_wins(
    tmp_path: Path, settings_floor: SecurityLevel | None, plugin_floor: SecurityLevel | None
) -> None:
    info = declared(L.PROTECTED, output_floor=plugin_floor)
    plan = plan_for(tmp_path, L.PROTECTED, info, settings_floor=settings_floor).plan

    assert plan.ok, [v.describe() for v in plan.violations]
    assert plan.level_of(COMPONENT) is L.PROTECTED
