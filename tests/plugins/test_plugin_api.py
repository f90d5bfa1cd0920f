"""``elspeth.plugins`` exports exactly the documented plugin-author API, nothing of the runtime."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import elspeth.plugins

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_MD = ROOT / "docs" / "plugins.md"

DOCUMENTED = {
    "ClearanceError",
    "ENTRY_POINT_GROUP",
    "FrameMetadata",
    "FrameProxy",
    "NoParameters",
    "Plugin",
    "PluginContext",
    "PluginKind",
    "ProxyRefusedError",
    "View",
}


def export_table() -> set[str]:
    text = PLUGINS_MD.read_text("utf-8")
    section = text.split("## What `elspeth.plugins` exports", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z_]+)` \|", section, re.MULTILINE))


def imported_from(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def test_all_is_exactly_the_documented_set() -> None:
    assert set(elspeth.plugins.__all__) == DOCUMENTED
    assert len(elspeth.plugins.__all__) == len(DOCUMENTED)


def test_docs_plugins_md_documents_every_exported_name() -> None:
    assert export_table() == set(elspeth.plugins.__all__)


def test_runtime_internals_are_not_importable_through_the_package() -> None:
    public = {
        name
        for name, value in vars(elspeth.plugins).items()
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(value, types.ModuleType)
    }
    assert public == set(elspeth.plugins.__all__)
    for internal in ("PluginRegistry", "describe", "validate_parameters", "PROXY_COUNTS"):
        assert not hasattr(elspeth.plugins, internal), internal


def test_every_exported_name_is_the_real_object() -> None:
    from elspeth.orchestrator._errors import ProxyRefusedError
    from elspeth.plugins import _api
    from elspeth.security import ClearanceError

    assert elspeth.plugins.Plugin is _api.Plugin
    assert elspeth.plugins.ProxyRefusedError is ProxyRefusedError
    assert elspeth.plugins.ClearanceError is ClearanceError
    assert elspeth.plugins.ENTRY_POINT_GROUP == "elspeth.plugins"


def test_plugins_need_nothing_beyond_the_api() -> None:
    """The built-ins, the test plugins and the docs' example use only exported names."""
    exported = set(elspeth.plugins.__all__)
    builtin = ROOT / "src" / "elspeth" / "plugins" / "builtin"
    for path in sorted(builtin.glob("*.py")):
        assert imported_from(path, "elspeth.plugins._api") <= exported, path.name
        assert not imported_from(path, "elspeth.plugins._declaration"), path.name
        assert not imported_from(path, "elspeth.plugins._registry"), path.name
    for directory in ("tests/orchestrator/worker_plugins", "tests/integration/probe_plugins"):
        for path in sorted((ROOT / directory).glob("*.py")):
            assert imported_from(path, "elspeth.plugins") <= exported, path
    example = PLUGINS_MD.read_text("utf-8").split("```python\n", 1)[1].split("```", 1)[0]
    names = {
        alias.name
        for node in ast.walk(ast.parse(example))
        if isinstance(node, ast.ImportFrom) and node.module == "elspeth.plugins"
        for alias in node.names
    }
    assert names
    assert names <= exported
