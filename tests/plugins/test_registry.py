"""The plugin registry and the built-in score extractor's parameter schema (no workers needed)."""

from __future__ import annotations

import hashlib
import inspect
from importlib import metadata
from pathlib import Path

import pytest

from elspeth.errors import ConfigurationError
from elspeth.plugins import PluginKind
from elspeth.plugins._declaration import describe
from elspeth.plugins._registry import PluginRegistry, UnknownPluginError
from elspeth.security import SecurityLevel

WORKER_PLUGINS = Path(__file__).parents[1] / "orchestrator" / "worker_plugins"
SCORES = {"source": "text", "output": "score", "pattern": r"score: (\d+)"}


def test_builtins_and_plugin_directories_are_found_by_name() -> None:
    registry = PluginRegistry([WORKER_PLUGINS])
    assert "score_extractor" in registry.names()
    assert "mean_aggregator" in registry.names()
    assert "_RowPlugin" not in registry.names()
    aggregator = registry.get("mean_aggregator")
    assert aggregator.kind is PluginKind.AGGREGATOR
    info = describe(registry.get("floored"))
    assert info["output_floor"] == "OFFICIAL_SENSITIVE"
    assert (info["min_proxies"], info["max_proxies"]) == (1, 1)


def test_unknown_plugin_lists_the_known_ones() -> None:
    with pytest.raises(
        UnknownPluginError,
        match=r"unknown plugin 'nope'; known plugins: answer_scorer, json_schema_validator, "
        r"regex_validator, repeat_reducer, "
        r"score_comparison, score_extractor, score_statistics, score_summary, semantic_similarity, "
        r"threshold_early_stop$",
    ):
        PluginRegistry().get("nope")


def test_a_name_defined_twice_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "dup.py").write_text(
        "from elspeth.plugins import Plugin, PluginKind\n"
        "from elspeth.security import SecurityLevel\n"
        "class Dup(Plugin):\n"
        "    name = 'score_extractor'\n"
        "    kind = PluginKind.ROW_PLUGIN\n"
        "    clearance = SecurityLevel.OFFICIAL\n"
        "    def run(self, proxies, context): pass\n"
    )
    with pytest.raises(
        ConfigurationError,
        match=r"'score_extractor' is defined twice: by built-in .* and by plugin file .*dup.py",
    ):
        PluginRegistry([tmp_path])


def test_a_badly_declared_plugin_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "from elspeth.plugins import Plugin\n"
        "class Bad(Plugin):\n"
        "    name = 'Bad Name'\n"
        "    clearance = 'SECRET'\n"
        "    def run(self, proxies, context): pass\n"
    )
    with pytest.raises(
        ConfigurationError,
        match=r"Bad from plugin file .*bad.py is declared wrongly: "
        r"name 'Bad Name'.*kind.*clearance",
    ):
        PluginRegistry([tmp_path])


def test_missing_directory_and_broken_file_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        PluginRegistry([tmp_path / "missing"])
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigurationError, match=r"broken.py failed to import: RuntimeError: boom"):
        PluginRegistry([tmp_path])


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"source": "text", "output": "s"}, "exactly one of 'pattern' and 'json_field'"),
        ({**SCORES, "json_field": "a.b"}, "exactly one of 'pattern' and 'json_field'"),
        ({**SCORES, "pattern": "(a)(b)"}, "exactly one capture group, has 2"),
        ({**SCORES, "pattern": "(unclosed"}, "not a valid regex"),
        ({"source": "text", "output": "s", "json_field": "a..b"}, "empty path segment"),
        ({**SCORES, "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"output": "s", "pattern": "(x)"}, "source: Field required"),
    ],
)
def test_score_extractor_parameters_are_checked(
    parameters: dict[str, object], message: str
) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"plugin 'score_extractor': invalid parameters: .*{message}"
    ):
        PluginRegistry().build("score_extractor", parameters)


def test_score_extractor_declaration() -> None:
    plugin = PluginRegistry().build("score_extractor", SCORES)
    assert plugin.kind is PluginKind.ROW_PLUGIN
    assert plugin.clearance is SecurityLevel.SECRET
    assert plugin.output_floor is None


def test_a_plugin_says_which_code_it_is() -> None:
    """A built-in is its distribution and version; a plugin file, which has no version of its
    own, is its file name and SHA-256, so a changed file is a different plugin on the record."""
    registry = PluginRegistry([WORKER_PLUGINS])
    assert describe(registry.get("score_extractor"))["version"] == (
        f"elspeth {metadata.version('elspeth')}"
    )
    source = Path(inspect.getfile(registry.get("mean_aggregator")))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert describe(registry.get("mean_aggregator"))["version"] == (
        f"file {source.name} sha256:{digest}"
    )


@pytest.mark.parametrize("floor", ["4GiB", -1, 1.5, True])
def test_a_memory_floor_that_is_not_a_byte_count_is_a_declaration_error(
    tmp_path: Path, floor: object
) -> None:
    (tmp_path / "floor.py").write_text(
        "from elspeth.plugins import Plugin, PluginKind\n"
        "from elspeth.security import SecurityLevel\n"
        "class Floor(Plugin):\n"
        "    name = 'floor'\n"
        "    kind = PluginKind.ROW_PLUGIN\n"
        "    clearance = SecurityLevel.OFFICIAL\n"
        f"    min_memory_limit_bytes = {floor!r}\n"
        "    def run(self, proxies, context): pass\n"
    )
    with pytest.raises(
        ConfigurationError, match=r"min_memory_limit_bytes must be a non-negative int"
    ):
        PluginRegistry([tmp_path])
