"""The viewer's server as an attacker meets it: over real HTTP on loopback, every lock alone.

Token, Host header, read-only methods, the security headers on every answer (refusals
included), parameters checked by name, a run above --max-level refused, a non-loopback bind
without the operator's token refused, and a results file changed after the run refused.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from elspeth.security import SecurityLevel
from elspeth.view import (
    CONTENT_SECURITY_POLICY,
    ViewError,
    ViewServer,
    choose_token,
    open_run,
    viewed_runs,
)
from tests.suite.conftest import run_cli
from tests.view.conftest import serving

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-for-tests-0123456789"


def request(
    server: ViewServer,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    host: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.port}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def api(server: ViewServer, path: str) -> Any:
    status, _, body = request(server, path, headers={"X-Elspeth-Token": TOKEN})
    assert status == 200, body
    return json.loads(body)


@pytest.mark.parametrize("path", ["/", "/api/summary", "/api/rows", "/api/rows.csv", "/nope"])
def test_no_token_or_a_wrong_one_is_403_on_every_path(sample_run: Path, path: str) -> None:
    with serving([sample_run], token=TOKEN) as server:
        assert request(server, path)[0] == 403
        assert request(server, f"{path}?token=wrong-{TOKEN}")[0] == 403
        assert request(server, path, headers={"X-Elspeth-Token": TOKEN[:-1]})[0] == 403
        assert request(server, f"{path}?token={TOKEN}")[0] == (404 if path == "/nope" else 200)


def test_the_pages_script_and_style_are_served_without_the_token_and_hold_no_run_data(
    sample_run: Path,
) -> None:
    with serving([sample_run], token=TOKEN) as server:
        script = request(server, "/view.js")
        style = request(server, "/view.css")
        assert request(server, "/view.js", host="evil.example")[0] == 403
    assert (script[0], style[0]) == (200, 200)
    assert script[1]["Content-Type"] == "text/javascript; charset=utf-8"
    assert style[1]["Content-Type"] == "text/css; charset=utf-8"
    packaged = resources.files("elspeth.view").joinpath("static")
    assert script[2] == packaged.joinpath("view.js").read_bytes()
    assert style[2] == packaged.joinpath("view.css").read_bytes()


def test_the_token_in_a_header_is_enough_and_the_page_is_served(sample_run: Path) -> None:
    with serving([sample_run], token=TOKEN) as server:
        status, headers, body = request(server, "/", headers={"X-Elspeth-Token": TOKEN})
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="view.js">' in body


def test_a_foreign_host_header_is_refused_even_with_the_token(sample_run: Path) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host."""
    with serving([sample_run], token=TOKEN) as server:
        for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1:1", ""):
            status, _, body = request(server, f"/api/summary?token={TOKEN}", host=host or " ")
            assert status == 403, host
            assert body == b"unexpected Host header\n"
        for host in (f"localhost:{server.port}", f"LOCALHOST:{server.port}"):
            assert request(server, f"/api/summary?token={TOKEN}", host=host)[0] == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_reads_are_answered(sample_run: Path, method: str) -> None:
    with serving([sample_run], token=TOKEN) as server:
        status, headers, _ = request(
            server, f"/api/rows?token={TOKEN}", method=method, headers={"Content-Length": "0"}
        )
    assert status == 501
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_every_answer_carries_the_security_headers(sample_run: Path) -> None:
    with serving([sample_run], token=TOKEN) as server:
        answers = [
            request(server, "/api/summary"),  # 403
            request(server, f"/api/summary?token={TOKEN}"),
            request(server, f"/missing?token={TOKEN}"),  # 404
            request(server, f"/api/rows?token={TOKEN}&mode=bogus"),  # 400
            request(server, f"/view.js?token={TOKEN}"),
        ]
    assert [status for status, _, _ in answers] == [403, 200, 404, 400, 200]
    for _, headers, _ in answers:
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("mode=bogus", "mode 'bogus' is not one of all, failures, errors, different, delta"),
        ("limit=0", "limit '0' is not a whole number from 1 to 500"),
        ("limit=501", "limit '501' is not a whole number from 1 to 500"),
        ("offset=-1", "offset '-1' is not a whole number"),
        ("low=nan&score=urgency", "low 'nan' is not a finite number"),
        ("score=speed", "score 'speed' is not one of urgency, clarity"),
        ("experiment=ghost", "experiment 'ghost' is not one of baseline, terse_prompt"),
        ("colour=red", "unknown parameter 'colour'"),
        ("expression=__import__('os').system('id')", "filter: call at column 1 is not"),
        ("expression=ghost_column%20%3E%201", "filter: no column 'ghost_column'"),
        ("expression=region%20%3E%203", "filter: "),
        ("search=(&regex=1", "search: not a regular expression"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(sample_run: Path, query: str, message: str) -> None:
    with serving([sample_run], token=TOKEN) as server:
        status, headers, body = request(server, f"/api/rows?token={TOKEN}&{query}")
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert message in json.loads(body)["error"]


def test_a_run_above_max_level_is_refused(sample_run: Path) -> None:
    run = open_run(sample_run)
    assert run.level is SecurityLevel.OFFICIAL
    with pytest.raises(ViewError, match=r"the run is OFFICIAL, above --max-level UNOFFICIAL"):
        viewed_runs([run], SecurityLevel.UNOFFICIAL)
    viewed_runs([run], SecurityLevel.OFFICIAL)  # at the level itself: served

    result = run_cli("view", sample_run, "--max-level", "UNOFFICIAL")
    assert result.code == 2
    assert "above --max-level UNOFFICIAL; not served" in result.stderr


def test_a_non_loopback_bind_needs_the_operators_token(
    sample_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ViewError, match=r"--host 0\.0\.0\.0 is not a loopback address"):
        choose_token("0.0.0.0", None)
    with pytest.raises(ViewError, match="at least 16 printable ASCII characters"):
        choose_token("0.0.0.0", "short")
    assert choose_token("0.0.0.0", TOKEN) == TOKEN
    generated = {choose_token("127.0.0.1", None) for _ in range(3)}
    assert len(generated) == 3
    assert all(len(t) >= 32 for t in generated)
    assert len(choose_token("::1", None)) >= 32

    monkeypatch.delenv("ELSPETH_VIEW_TOKEN", raising=False)
    result = run_cli("view", sample_run, "--host", "0.0.0.0")
    assert result.code == 2
    assert "is not a loopback address: set an access token of your own" in result.stderr


def test_bound_elsewhere_the_operators_token_guards_whatever_host_is_named(
    sample_run: Path,
) -> None:
    with serving([sample_run], host="0.0.0.0", token=TOKEN) as server:
        assert request(server, "/api/summary", host="viewer.internal:8080")[0] == 403
        reached = request(server, f"/api/summary?token={TOKEN}", host="viewer.internal:8080")
        assert reached[0] == 200


def test_ipv6_loopback_is_served(sample_run: Path) -> None:
    with serving([sample_run], host="::1", token=TOKEN) as server:
        assert server.url().startswith(f"http://[::1]:{server.port}/?token=")
        connection = http.client.HTTPConnection("::1", server.port, timeout=10)
        connection.request(
            "GET", f"/api/summary?token={TOKEN}", headers={"Host": f"[::1]:{server.port}"}
        )
        assert connection.getresponse().status == 200
        connection.close()


def test_a_results_file_changed_after_the_run_is_refused(sample_run: Path, tmp_path: Path) -> None:
    copy = _broken_copy(sample_run, tmp_path)
    target = copy / "terse_prompt__results__results_parquet.parquet"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(
        ViewError, match=r"terse_prompt__results__results_parquet\.parquet: differs"
    ):
        open_run(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ViewError, match="no run manifest"):
        open_run(copy)


def test_an_error_cell_carries_its_reasons_from_the_audit_log(graded_hostile_run: Path) -> None:
    with serving([graded_hostile_run], token=TOKEN) as server:
        page = api(server, "/api/rows?mode=errors&limit=500")
        everything = api(server, "/api/rows?limit=500")
    assert page["total"] > 0
    for row in page["rows"]:
        errors = [cell for cell in row["cells"].values() if cell["status"] == "error"]
        assert errors
        for cell in errors:
            assert cell["reasons"]
    reasons = {r for row in page["rows"] for c in row["cells"].values() for r in c["reasons"]}
    judge = "urgency_judge: malformed grade: the reply has no 'GRADE:' line"
    assert any(reason.startswith(judge) for reason in reasons)
    assert all(reason.split(": ")[0] in {"urgency_judge", "exact", "choice"} for reason in reasons)
    assert all(
        cell["reasons"] == []
        for row in everything["rows"]
        for cell in row["cells"].values()
        if cell["status"] != "error"
    )


def test_the_summary_and_a_page_of_rows(sample_run: Path) -> None:
    with serving([sample_run], token=TOKEN) as server:
        summary = api(server, "/api/summary")
        page = api(server, "/api/rows?limit=5&mode=delta")
        everything = api(server, "/api/rows?limit=500")
    assert summary["banner"] == "Classification: OFFICIAL"
    assert summary["experiments"] == ["baseline", "terse_prompt", "second_opinion"]
    assert summary["baseline"] == "baseline"
    assert summary["scores"] == ["urgency", "clarity"]
    assert summary["runs"][0]["status"] == "complete"
    assert summary["rows"] == everything["total"] == 60
    assert len(page["rows"]) == 5
    largest = [
        max(
            abs(d)
            for cell in row["cells"].values()
            for d in cell.get("deltas", {}).values()
            if d is not None
        )
        for row in page["rows"]
    ]
    assert largest == sorted(largest, reverse=True)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/row", "row is required"),
        ("/api/row?row=abc", "row 'abc' is not a whole number from 0"),
        ("/api/row?row=9999", "row 9999 (repeat 0) is not in the run"),
        ("/api/diff?row=0&experiment=ghost&criterion=urgency", "experiment 'ghost' is not one of"),
        (
            "/api/diff?row=0&experiment=terse_prompt&criterion=speed",
            "criterion 'speed' is not one of urgency, clarity",
        ),
        ("/api/histogram?score=urgency&colour=1", "unknown parameter 'colour'; known: score"),
        (
            "/api/scatter?score=urgency&variant=baseline",
            "variant 'baseline' is not one of terse_prompt, second_opinion",
        ),
        (
            "/api/rows?pair_variant=ghost&score=urgency&pair_x=1&pair_y=1",
            "pair_variant 'ghost' is not one of terse_prompt, second_opinion",
        ),
        ("/api/rows?status=maybe", "status 'maybe' is not one of pass, fail, error, ok, absent"),
        ("/api/rows?regex=yes", "regex 'yes' is not 1 or 0"),
    ],
)
def test_every_route_names_its_bad_parameter(sample_run: Path, path: str, message: str) -> None:
    with serving([sample_run], token=TOKEN) as server:
        status, _, body = request(server, path, headers={"X-Elspeth-Token": TOKEN})
    assert status == 400
    assert message in json.loads(body)["error"]


def _broken_copy(sample_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(sample_run, copy, ignore=shutil.ignore_patterns("worker-logs"))
    return copy


def _rewrite_manifest(run: Path, change: Any) -> None:
    manifest = json.loads((run / "manifest.json").read_text("utf-8"))
    change(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest), "utf-8")


def _keep_audit_lines(run: Path, keep: Any) -> None:
    lines = (run / "audit.jsonl").read_text("utf-8").splitlines(keepends=True)
    (run / "audit.jsonl").write_text("".join(line for line in lines if keep(line)), "utf-8")


def _old_run_started(line: str) -> str:
    event = json.loads(line)
    if event["event"] == "run_started":
        del event["experiments"], event["baseline"]
    return json.dumps(event, separators=(",", ":")) + "\n"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: (r / "manifest.json").write_text("{", "utf-8"),
            r"manifest\.json: cannot be read",
        ),
        (
            lambda r: _rewrite_manifest(r, lambda m: m.update(classification="SECRETISH")),
            r"manifest\.json: classification 'SECRETISH' is not a level",
        ),
        (
            lambda r: _rewrite_manifest(r, lambda m: m.update(format="something-else")),
            r"manifest\.json: not an Elspeth run manifest",
        ),
        (
            lambda r: _keep_audit_lines(r, lambda line: '"run_started"' not in line),
            r"audit\.jsonl: no run_started event; the run never started",
        ),
        (
            lambda r: (r / "audit.jsonl").write_text(
                "".join(map(_old_run_started, (r / "audit.jsonl").open("r", encoding="utf-8"))),
                "utf-8",
            ),
            r"names no experiments: the run was written by an Elspeth older than the viewer",
        ),
        (
            lambda r: (r / "audit.jsonl").write_text("", "utf-8"),
            r"audit\.jsonl: the audit log is empty",
        ),
        (
            lambda r: (r / "audit.jsonl").unlink(),
            r"audit\.jsonl: no audit log in the run directory",
        ),
        (
            lambda r: (r / "baseline__results__results_parquet.parquet").unlink(),
            r"baseline__results__results_parquet\.parquet: listed in the manifest but missing",
        ),
        (
            lambda r: _rewrite_manifest(
                r,
                lambda m: m.update(
                    artifacts=[a for a in m["artifacts"] if "__results__" not in a["path"]]
                ),
            ),
            r"the baseline baseline wrote no results file; the viewer reads the csv, jsonl or",
        ),
    ],
)
def test_a_damaged_or_unusable_run_is_refused_naming_the_file(
    sample_run: Path, tmp_path: Path, damage: Any, message: str
) -> None:
    run = _broken_copy(sample_run, tmp_path)
    damage(run)
    with pytest.raises(ViewError, match=message):
        viewed_runs([open_run(run)], None)
    result = run_cli("view", run)
    assert result.code == 2
    assert re.search(message, result.stderr)
