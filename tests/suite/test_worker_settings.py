"""The worker limits of a settings file reach the plugin runtime: the ``workers`` values for every
worker, a plugin's own values for its workers (the strictest of its instances), and a bad
combination refused naming the keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from elspeth.config import SettingsError, load_suite
from elspeth.suite._setup import runtime_config
from tests.suite.conftest import build_suite, run_cli

MIB = 1024**2


def _settings_with_workers(directory: Path, workers: dict[str, int]) -> Path:
    suite = build_suite(directory / "suite", None, rows=2)
    settings = suite.settings
    settings["workers"] = workers
    params = {"source": "quality_response", "json_field": "score", "output": "quality"}
    settings["plugins"] = {
        "loose": {
            "plugin": "score_extractor",
            "clearance": "OFFICIAL",
            "params": params,
            "scratch_bytes": 8 * MIB,
        },
        "strict": {
            "plugin": "score_extractor",
            "clearance": "OFFICIAL",
            "params": {**params, "output": "quality2"},
            "scratch_bytes": 2 * MIB,
            "file_size_limit_bytes": 1 * MIB,
        },
    }
    return suite.write()


def test_scratch_and_in_flight_limits_reach_the_runtime(tmp_path: Path) -> None:
    file = _settings_with_workers(
        tmp_path, {"scratch_bytes": 32 * MIB, "max_in_flight_bytes": 128 * MIB}
    )
    config = runtime_config(load_suite(file), tmp_path / "logs")
    assert config.scratch_bytes == 32 * MIB
    assert config.max_in_flight_bytes == 128 * MIB
    own = config.limits_for("score_extractor")
    assert own.scratch_bytes == 2 * MIB  # the stricter of the two instances
    assert own.file_size_limit_bytes == 1 * MIB
    assert own.fsize_rlimit == 1 * MIB


def test_bytes_in_flight_below_one_payload_is_refused_naming_both_keys(tmp_path: Path) -> None:
    file = _settings_with_workers(
        tmp_path, {"max_payload_bytes": 64 * MIB, "max_in_flight_bytes": 1 * MIB}
    )
    with pytest.raises(SettingsError) as raised:
        load_suite(file)
    message = str(raised.value)
    assert "max_in_flight_bytes" in message
    assert "max_payload_bytes" in message


HUNGRY_PLUGIN = """
from elspeth.plugins import Plugin, PluginKind
from elspeth.security import SecurityLevel

class Hungry(Plugin):
    name = "hungry"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.OFFICIAL
    min_memory_limit_bytes = 3 * 1024**3

    def run(self, proxies, context):
        raise AssertionError("a refused plan runs nothing")
"""


@pytest.mark.integration
@pytest.mark.parametrize(
    ("instances", "source"),
    [
        ({"a": None}, "workers.memory_limit_bytes"),
        # One instance asks for enough, but the other's smaller value wins for both.
        (
            {"a": 4 * 1024**3, "b": 1024**3},
            "the smallest memory_limit_bytes of the hungry instances",
        ),
    ],
)
def test_a_plugins_memory_floor_is_enforced_by_the_plan_naming_the_key(
    tmp_path: Path, instances: dict[str, int | None], source: str
) -> None:
    suite = build_suite(tmp_path / "suite", None, rows=2)
    (suite.directory / "plugins").mkdir()
    (suite.directory / "plugins" / "hungry.py").write_text(HUNGRY_PLUGIN, "utf-8")
    settings = suite.settings
    settings["plugin_dirs"] = ["plugins"]
    settings["plugins"] = {
        name: {"plugin": "hungry", "clearance": "OFFICIAL"}
        | ({"memory_limit_bytes": limit} if limit is not None else {})
        for name, limit in instances.items()
    }
    settings["defaults"]["row_plugins"] = list(instances)

    result = run_cli("validate", suite.write())

    assert result.code == 2, result.output
    granted = min(limit or 2 * 1024**3 for limit in instances.values())
    message = " ".join(result.output.split())
    assert (
        f"plugin 'hungry' needs an address-space limit of at least {3 * 1024**3} bytes and its "
        f"workers would get {granted} ({source}): set plugins.a.memory_limit_bytes: {3 * 1024**3}"
    ) in message
