"""A row plugin that raises: the run fails closed (or skips, when its policy says so), the
message names plugin and chunk, and the plugin's error text — data — stays out of stderr."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.suite.conftest import MakeSuite, manifest, run_cli

pytestmark = pytest.mark.integration

WORKER_PLUGINS = Path(__file__).resolve().parents[1] / "orchestrator" / "worker_plugins"


def with_failing_plugin(make_suite: MakeSuite, on_error: str):  # type: ignore[no-untyped-def]
    suite = make_suite(None, rows=6)
    suite.settings["plugin_dirs"] = [str(WORKER_PLUGINS)]
    suite.settings["plugins"] = {
        "broken": {"plugin": "failing", "clearance": "OFFICIAL", "on_error": on_error}
    }
    suite.defaults["row_plugins"] = ["broken"]
    return suite


def test_a_failing_row_plugin_fails_the_run_closed(make_suite: MakeSuite) -> None:
    suite = with_failing_plugin(make_suite, "fail")

    result = run_cli(*suite.args())

    assert result.code == 1, result.output
    assert "failing" in result.stderr
    assert "base:0" in result.stderr
    assert "ROW-CONTENT" not in result.output
    recorded = manifest(suite.only_run_dir())
    assert recorded["status"] == "failed"
    assert recorded["artifacts"] == []


def test_a_skip_policy_lets_the_run_complete_without_the_plugin(make_suite: MakeSuite) -> None:
    suite = with_failing_plugin(make_suite, "skip")

    result = run_cli(*suite.args())

    assert result.code == 0, result.output
    assert manifest(suite.only_run_dir())["status"] == "complete"
