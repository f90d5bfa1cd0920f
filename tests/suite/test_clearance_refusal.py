"""No read up, proved by the plan: OFFICIAL_SENSITIVE data and an OFFICIAL sink stop the run
before the datasource is read and before any HTTP request (standalone mode, under its ceiling,
so the refusal is the plan's and not the ceiling's)."""

from __future__ import annotations

import pytest

from tests.suite.conftest import MakeSuite, audit_events, manifest, run_cli

pytestmark = pytest.mark.integration

SENSITIVE = "OFFICIAL_SENSITIVE"


def test_sensitive_data_to_official_sink_refused_before_reading(
    make_server, make_suite: MakeSuite
) -> None:
    server = make_server()
    suite = make_suite(server, rows=10)
    suite.settings["datasource"].update(classification=SENSITIVE, clearance=SENSITIVE)
    suite.settings["models"]["loopback"]["clearance"] = SENSITIVE
    # Bytes no UTF-8 reader accepts: had the datasource been read, the run would have failed
    # on them (a data error), not on the plan.
    (suite.directory / "data.csv").write_bytes(b"id,text\nR000,\xff\xfe broken\n")

    result = run_cli(*suite.args())

    assert result.code == 3, result.output
    assert "clearance plan refused: 1 violation(s)" in result.stderr
    assert (
        "sink 'base/sink:results' is cleared to OFFICIAL but receives OFFICIAL_SENSITIVE data"
        in result.stderr
    )
    assert server.stats.request_count == 0
    run_dir = suite.only_run_dir()
    events = [event["event"] for event in audit_events(run_dir)]
    assert "refusal" in events
    assert "frame_granted" not in events
    assert "llm_result" not in events
    refusal = next(e for e in audit_events(run_dir) if e["event"] == "refusal")
    assert refusal["reason"] == "clearance_plan"
    recorded = manifest(run_dir)
    assert (recorded["status"], recorded["artifacts"]) == ("refused", [])
    assert not list(run_dir.glob("base__*")), "a refused run wrote an output"
    assert not list(run_dir.glob("checkpoint-*"))
    # The control: with a plan that passes, the same file is read, and stops the run.
    suite.settings["sinks"]["results"]["clearance"] = SENSITIVE
    control = run_cli(*suite.args())
    assert control.code == 1
    assert "is not valid utf-8" in control.stderr
