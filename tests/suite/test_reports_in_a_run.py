"""Reports and the signed bundle as a run writes them: a real loopback endpoint, real workers
computing the statistics, the real CLI, and ``elspeth verify-bundle`` on the result."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from elspeth.security import SecurityLevel
from tests.suite.conftest import (
    MODEL_NAME,
    SECRET_KEY,
    MakeSuite,
    SuiteFiles,
    audit_events,
    manifest,
    read_results,
    run_cli,
    scoring_plugins,
)

pytestmark = pytest.mark.integration

SENSITIVE = "OFFICIAL_SENSITIVE"
REPORTS = {
    "report_html": {"type": "html_report", "clearance": "OFFICIAL"},
    "report_markdown": {"type": "markdown_report", "clearance": "OFFICIAL"},
    "workbook": {"type": "excel_report", "clearance": "OFFICIAL"},
}


def with_statistics(suite: SuiteFiles, keys: Path | None = None) -> None:
    """A baseline and a variant, scores extracted, summarised and compared, every report."""
    settings = suite.settings
    settings["plugins"] = {
        **scoring_plugins("OFFICIAL"),
        "versus_baseline": {
            "plugin": "score_comparison",
            "clearance": "OFFICIAL",
            "params": {"criteria": "quality"},
        },
    }
    settings["defaults"].update(
        row_plugins=["score"], aggregators=["summary"], comparisons=["versus_baseline"]
    )
    settings["prompt_packs"]["terse"] = {"criteria": {"quality": "Rate {{ id }} briefly"}}
    settings["experiments"].append({"name": "terse", "prompt_pack": "terse"})
    settings["sinks"].update(REPORTS)
    settings["reports"] = list(REPORTS)
    if keys is not None:
        settings["sinks"]["bundle"] = {
            "type": "bundle",
            "clearance": "OFFICIAL",
            "signing": {"method": "ed25519", "private_key_path": str(keys / "signing.pem")},
        }
        settings["reports"].append("bundle")


def make_keys(directory: Path) -> Path:
    directory.mkdir()
    result = run_cli(
        "keygen",
        "--private",
        directory / "signing.pem",
        "--public",
        directory / "signing.pub.pem",
    )
    assert result.code == 0, result.output
    return directory


def test_a_run_writes_reports_and_a_bundle_a_third_party_can_verify(
    make_server, make_suite: MakeSuite, tmp_path: Path
) -> None:
    server = make_server()
    suite = make_suite(server, rows=30)
    keys = make_keys(tmp_path / "keys")
    with_statistics(suite, keys)
    # Priced, so every answer has a cost (without a price its cost is unknown, not 0).
    suite.settings["pricing"] = {MODEL_NAME: {"prompt_per_1k": "0.5", "completion_per_1k": "1.5"}}

    result = run_cli(*suite.args())

    assert result.code == 0, result.output
    run_dir = suite.only_run_dir()
    recorded = manifest(run_dir)
    assert recorded["status"] == "complete"
    listed = {entry["path"]: entry for entry in recorded["artifacts"]}
    for name in ("report__report_html.html", "report__report_markdown.md"):
        assert listed[name]["classification"] == "OFFICIAL"
        assert (run_dir / name).stat().st_mode & 0o777 == 0o600
    bundle = run_dir / "bundle__bundle__OFFICIAL.tar.gz"
    assert bundle.name in listed
    assert f"report: {bundle}" in result.stdout

    # The statistics came from the worker plugins and reached the reports.
    results = read_results(run_dir / "base__results__results.csv")
    for column in ("quality_prompt_tokens", "quality_completion_tokens", "quality_cost"):
        assert results[column].notna().all(), column
    assert (results["quality_latency_ms"] > 0).all()
    summary = read_results(run_dir / "base__summary__results.csv")
    assert summary.loc[0, "rows"] == 30
    assert summary.loc[0, "errors"] == 0
    markdown = (run_dir / "report__report_markdown.md").read_text("utf-8")
    assert "Classification: OFFICIAL" in markdown
    assert "quality: " in markdown  # the comparison's verdict line

    verified = run_cli("verify-bundle", bundle, "--public-key", keys / "signing.pub.pem")
    assert verified.code == 0, verified.output
    assert "OFFICIAL" in verified.stdout

    # The secret reached the endpoint and nothing the run wrote, the bundle's members included.
    assert server.stats.requests[0].headers["Authorization"] == f"Bearer {SECRET_KEY}"
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET_KEY.encode() not in path.read_bytes(), path
    with tarfile.open(bundle, "r:gz") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}  # type: ignore[union-attr]
    assert not any(SECRET_KEY.encode() in data for data in members.values())
    bundled = pq.read_table(io.BytesIO(members["results/base.parquet"])).to_pandas()
    assert len(bundled) == 30
    bundle_manifest = json.loads(members["MANIFEST.json"])
    assert bundle_manifest["classification"] == "OFFICIAL"
    events = audit_events(run_dir)
    written = [e for e in events if e["event"] == "output_written"]
    reports = [e for e in written if e["component"].startswith("report:")]
    assert [e["sink"] for e in reports] == [*REPORTS, "bundle"]
    # Every output, frames and reports alike, is recorded in one shape.
    assert {frozenset(e) for e in written} == {
        frozenset(
            {"ts", "run", "event", "prev", "component", "sink", "output", "format", "level"}
            | {"rows", "seal_audit_ids"}
        )
    }


def test_a_tampered_bundle_from_a_run_fails_verification(
    make_suite: MakeSuite, tmp_path: Path
) -> None:
    suite = make_suite(None, rows=8)
    keys = make_keys(tmp_path / "keys")
    with_statistics(suite, keys)
    assert run_cli(*suite.args()).code == 0
    bundle = suite.only_run_dir() / "bundle__bundle__OFFICIAL.tar.gz"
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(bundle, "r:gz") as source, tarfile.open(tampered, "w:gz") as target:
        for member in source:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "summary.json":
                data = data.replace(b'"base"', b'"BASE"')
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))

    result = run_cli("verify-bundle", tampered, "--public-key", keys / "signing.pub.pem")

    assert result.code == 3, result.output
    assert "summary.json" in result.stderr


@pytest.mark.parametrize("report", sorted(REPORTS))
def test_a_report_cleared_below_the_data_is_refused_before_reading(
    make_server, make_suite: MakeSuite, report: str
) -> None:
    server = make_server()
    suite = make_suite(server, rows=6)
    with_statistics(suite)
    settings = suite.settings
    settings["datasource"].update(classification=SENSITIVE, clearance=SENSITIVE)
    settings["models"]["loopback"]["clearance"] = SENSITIVE
    for name, sink in settings["sinks"].items():
        sink["clearance"] = "OFFICIAL" if name == report else SENSITIVE
    for plugin in settings["plugins"].values():
        plugin["clearance"] = SENSITIVE

    result = run_cli(*suite.args())

    assert result.code == 3, result.output
    assert f"'report:{report}' is cleared to OFFICIAL but receives {SENSITIVE}" in result.stderr
    assert server.stats.request_count == 0
    run_dir = suite.only_run_dir()
    assert not list(run_dir.glob("report__*"))
    assert "frame_granted" not in {e["event"] for e in audit_events(run_dir)}
    # The control: cleared for the data, the same suite runs and reports at its level.
    settings["sinks"][report]["clearance"] = SENSITIVE
    control = run_cli(*suite.args())
    assert control.code == 0, control.output
    (control_dir,) = set(suite.run_dirs()) - {run_dir}
    written = manifest(control_dir)["artifacts"]
    levels = {a["classification"] for a in written if a["path"].startswith("report__")}
    assert levels == {SecurityLevel.OFFICIAL_SENSITIVE.name}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s["defaults"].update(sinks=["results", "report_html"]),
            "sink 'report_html' is a suite-level html_report; list it under reports",
        ),
        (
            lambda s: s.update(reports=["results"]),
            "sink 'results' writes frames (csv); it cannot be a report",
        ),
        (lambda s: s.update(reports=["nowhere"]), "unknown sink 'nowhere'"),
        (
            lambda s: s.update(reports=["report_html", "report_html"]),
            "reports lists report_html more than once",
        ),
    ],
)
def test_report_settings_mistakes_are_named(make_suite: MakeSuite, edit: Any, message: str) -> None:
    suite = make_suite(None, rows=2)
    with_statistics(suite)
    edit(suite.settings)

    result = run_cli(*suite.args())

    assert result.code == 2, result.output
    assert message in result.stderr
    assert not suite.run_dirs()


def test_a_run_stopped_by_its_budget_reports_nothing_until_resumed(make_suite: MakeSuite) -> None:
    """Reports show whole suites only: a stopped run writes none; its resumption writes them all,
    at the level of everything, once."""
    suite = make_suite(None, rows=8)
    with_statistics(suite)
    suite.defaults.update(concurrency=1, budget={"max_rows": 3})

    stopped = run_cli(*suite.args())

    assert stopped.code == 1, stopped.output
    run_dir = suite.only_run_dir()
    assert manifest(run_dir)["status"] == "stopped"
    assert not list(run_dir.glob("report__*"))
    suite.defaults.pop("budget")

    resumed = run_cli(*suite.args("--resume", run_dir.name))

    assert resumed.code == 0, resumed.output
    recorded = manifest(run_dir)
    assert recorded["status"] == "complete"
    reports = sorted(a["path"] for a in recorded["artifacts"] if a["path"].startswith("report__"))
    assert reports == [
        "report__report_html.html",
        "report__report_markdown.md",
        "report__workbook.xlsx",
    ]
    summary = read_results(run_dir / "base__summary__results.csv")
    assert summary.loc[0, "rows"] == 8


def test_a_bad_signing_key_stops_the_run_before_any_model_call(
    make_server, make_suite: MakeSuite, tmp_path: Path
) -> None:
    server = make_server()
    suite = make_suite(server, rows=4)
    keys = make_keys(tmp_path / "keys")
    with_statistics(suite, keys)
    private_key = keys / "signing.pem"
    private_key.chmod(0o644)

    checked = run_cli(*suite.args("--validate-only"))
    result = run_cli(*suite.args())

    for outcome in (checked, result):
        assert outcome.code == 2, outcome.output
        assert str(private_key) in outcome.stderr
        assert "PRIVATE KEY" not in outcome.output
    assert server.stats.request_count == 0
    run_dir = suite.only_run_dir()
    assert manifest(run_dir)["status"] == "failed"
    assert "frame_granted" not in {e["event"] for e in audit_events(run_dir)}
    # The control: the same key, private again, signs the run's bundle.
    private_key.chmod(0o600)
    assert run_cli(*suite.args()).code == 0
