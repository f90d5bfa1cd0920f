"""The worker limits of a settings file reach the plugin runtime: the ``workers`` values for every
worker, a plugin's own values for its workers (the strictest of its instances), and a bad
combination refused naming the keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from elspeth.config import SettingsError, load_suite
from elspeth.suite._setup import runtime_config
from tests.suite.conftest import build_suite

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
