"""SECRET suites through the real CLI with real users: what standalone mode cannot do.

The CLI (``<tier venv>/bin/python -m elspeth.cli``) runs as ``appuser`` against the tier's daemon
(running as ``sidecar``, mode ``sidecar``, ceiling SECRET); plugin workers start through the
sudoers rule as ``appplugin``. The loopback OpenAI-compatible server runs in this test process on
127.0.0.1 and requires the API key, which reaches the CLI only through its environment.

* A SECRET datasource and an OFFICIAL sink: refused by the plan (exit 3) before the datasource is
  read (its bytes are not UTF-8: reading them would fail the run differently, as the control
  shows) and before any HTTP request.
* The same data end to end with SECRET sinks: complete, marked SECRET, private to ``appuser``,
  unreadable by ``appplugin``, no row content in the audit log, the SECRET worker under seccomp.
* The same suite in standalone mode: the private daemon refuses SECRET (its ceiling), exit 3.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration._daemon import DaemonHandle
from tests.integration._processes import (
    BASE_ENVIRONMENT,
    live_processes_of,
    run_json_as,
    stop_process,
    wait_for,
)
from tests.integration._sudo import WORKER_MODULE
from tests.integration._tier import Tier
from tests.suite.conftest import (
    CLI_TIMEOUT,
    KEY_VARIABLE,
    SECRET_KEY,
    CliResult,
    SuiteFiles,
    audit_events,
    build_suite,
    manifest,
    read_results,
    scoring_plugins,
)
from tests.support.fixtures import MakeServer
from tests.support.openai_server import OpenAIServer

pytestmark = [pytest.mark.root, pytest.mark.integration]

SECRET = "SECRET"
ROWS = 12
#: Three chunks: the SECRET worker starts after the first and lives while the model answers
#: the other two, long enough to be looked at from outside.
CHUNK_ROWS = 4
#: Every input row's text holds this (tests/suite/conftest.py ``write_rows``).
ROW_TEXT = "was not collected"
#: In every answer of the loopback server.
ANSWER_TEXT = "loopback answer"
WORKER_LOG = re.compile(r"worker-\d+-(?P<pgid>\d+)-(?P<level>[A-Z_]+)\.stderr\.log")


@dataclass(frozen=True)
class WorkerSample:
    """A live worker as root sees it in ``/proc`` (the last sample before it ended)."""

    uid: int
    pgrp: int
    seccomp: str
    no_new_privs: str


@dataclass(frozen=True)
class AppuserRun:
    result: CliResult
    #: pid -> the last sample of each ``appplugin`` worker seen while the CLI ran.
    workers: dict[int, WorkerSample]


def secret_suite(tier: Tier, daemon: DaemonHandle, server: OpenAIServer, name: str) -> SuiteFiles:
    """``ROWS`` rows classified SECRET, an ``openai`` model at ``server`` cleared SECRET, a score
    extractor and a validator, a SECRET CSV sink; sidecar mode against the tier's daemon, workers
    as ``appplugin``. In a fresh directory inside the tier's ``appuser`` directory."""
    suite = build_suite(
        Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tier.appuser_dir)) / "suite", server, rows=ROWS
    )
    settings = suite.settings
    settings["sidecar"] = {
        "mode": "sidecar",
        "socket_path": str(daemon.socket_path),
        "session_key_path": str(daemon.session_key_path),
    }
    settings["workers"] = {
        "user": "appplugin",
        "sudo": "/usr/bin/sudo",
        "scratch_root": str(tier.scratch_root),
    }
    settings["datasource"].update(classification=SECRET, clearance=SECRET)
    settings["models"]["loopback"]["clearance"] = SECRET
    settings["sinks"]["results"]["clearance"] = SECRET
    settings["plugins"] = {
        **scoring_plugins(SECRET),
        "shape": {
            "plugin": "json_schema_validator",
            "clearance": SECRET,
            "params": {
                "source": "quality_response",
                "schema": {
                    "type": "object",
                    "required": ["score", "rationale"],
                    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
                },
            },
        },
    }
    suite.defaults.update(
        row_plugins=["score", "shape"],
        aggregators=["summary"],
        concurrency=2,
        chunk_rows=CHUNK_ROWS,
    )
    # The reports render in the orchestrator as appuser, whose home is not writable.
    settings["sinks"]["report"] = {"type": "html_report", "clearance": SECRET}
    settings["sinks"]["workbook"] = {"type": "excel_report", "clearance": SECRET}
    settings["reports"] = ["report", "workbook"]
    return suite


def appuser_args(tier: Tier, suite: SuiteFiles, *extra: str | os.PathLike[str]) -> list[str]:
    """The CLI's arguments, with the settings, the data and their directory handed to
    ``appuser`` (0700/0600). What the CLI writes is left alone: its owner is the CLI's."""
    args = [str(arg) for arg in suite.args(*extra)]
    appuser = tier.users["appuser"]
    for path, mode in (
        (suite.directory.parent, 0o700),
        (suite.directory, 0o700),
        (suite.path, 0o600),
        (suite.directory / "data.csv", 0o600),
    ):
        os.chown(path, appuser.uid, appuser.gid)
        path.chmod(mode)
    return args


def sample_worker(pid: int) -> WorkerSample | None:
    """The worker's ids and locks, or None if ``pid`` is gone or is not a worker (``ps`` cuts
    command lines at 80 columns, so the worker module is looked for in ``/proc``)."""
    proc = Path(f"/proc/{pid}")
    try:
        if WORKER_MODULE.encode() not in (proc / "cmdline").read_bytes().split(b"\0"):
            return None
        status = (proc / "status").read_text()
        pgrp = (proc / "stat").read_bytes().rpartition(b")")[2].split()[2]
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return WorkerSample(
        uid=int(fields["Uid"].split()[1]),
        pgrp=int(pgrp),
        seccomp=fields["Seccomp"].strip(),
        no_new_privs=fields["NoNewPrivs"].strip(),
    )


def run_cli_as_appuser(tier: Tier, args: list[str]) -> AppuserRun:
    """``python -m elspeth.cli ARGS`` as ``appuser`` with the API key in its environment only;
    while it runs, sample every ``appplugin`` worker from ``/proc`` (root may read it)."""
    workers: dict[int, WorkerSample] = {}
    appplugin = tier.users["appplugin"]

    def sampled_until_exit() -> bool:
        for line in live_processes_of(appplugin):
            sample = sample_worker(line.pid)
            if sample is not None:
                workers[line.pid] = sample
        return process.poll() is not None

    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [str(tier.python), "-m", "elspeth.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd="/",
            env={**BASE_ENVIRONMENT, KEY_VARIABLE: SECRET_KEY},
            close_fds=True,
            **tier.users["appuser"].process_options(),
        )
        try:
            wait_for(sampled_until_exit, CLI_TIMEOUT, "the CLI run as appuser to end")
        finally:
            stop_process(process)
        outputs = []
        for stream in (stdout, stderr):
            stream.seek(0)
            outputs.append(stream.read().decode("utf-8", "replace"))
    return AppuserRun(CliResult(process.returncode, *outputs), workers)


def read_as(tier: Tier, user: str, *paths: Path) -> list[dict[str, Any]]:
    """Try to read each file as ``user``: ``{"ok": size}`` or ``{"errno": "EACCES"}``."""
    argv = [str(tier.python), "-I", str(tier.script("sidecar_client_probe.py"))]
    actions = [{"action": "read_file", "path": str(path)} for path in paths]
    outcomes: list[dict[str, Any]] = run_json_as(tier.users[user], [*argv, json.dumps(actions)])
    return outcomes


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def assert_key_absent(suite: SuiteFiles, result: CliResult) -> None:
    searched = files_under(suite.output_dir)
    assert searched, f"the run wrote nothing under {suite.output_dir}"
    for path in searched:
        assert SECRET_KEY.encode() not in path.read_bytes(), f"the API key is in {path}"
    assert SECRET_KEY not in result.output


def event_names(run_dir: Path) -> list[str]:
    return [event["event"] for event in audit_events(run_dir)]


@pytest.fixture
def secret_suite_for(
    root_tier: Tier, sidecar_daemon: DaemonHandle, make_server: MakeServer
) -> Callable[[str], tuple[SuiteFiles, OpenAIServer]]:
    """``secret_suite_for(name)``: a SECRET suite and its own loopback server (key required;
    50 ms per answer, so a run lasts long enough to watch its workers)."""

    def make(name: str) -> tuple[SuiteFiles, OpenAIServer]:
        server = make_server(api_key=SECRET_KEY, latency=0.05)
        return secret_suite(root_tier, sidecar_daemon, server, name), server

    return make


def test_secret_data_to_an_official_sink_is_refused_before_reading(
    root_tier: Tier, secret_suite_for: Callable[[str], tuple[SuiteFiles, OpenAIServer]]
) -> None:
    suite, server = secret_suite_for("refused")
    suite.settings["sinks"]["results"]["clearance"] = "OFFICIAL"
    # No UTF-8 reader accepts these bytes: had the datasource been read, the run would have
    # failed on them (a data error, exit 1), not on the plan.
    (suite.directory / "data.csv").write_bytes(b"id,text\nR000,\xff\xfe broken\n")

    run = run_cli_as_appuser(root_tier, appuser_args(root_tier, suite))

    assert run.result.code == 3, run.result.output
    assert "clearance plan refused: 1 violation(s)" in run.result.stderr
    assert (
        "sink 'base/sink:results' is cleared to OFFICIAL but receives SECRET data"
        in run.result.stderr
    )
    assert server.stats.request_count == 0
    run_dir = suite.only_run_dir()
    events = event_names(run_dir)
    assert "authority_ready" in events  # the run reached the sidecar daemon
    assert "refusal" in events
    assert "frame_granted" not in events
    assert "llm_result" not in events
    recorded = manifest(run_dir)
    assert (recorded["status"], recorded["artifacts"]) == ("refused", [])
    assert "ClearancePlanError" in recorded["reason"]
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "audit.jsonl",
        "manifest.json",
        "worker-logs",
    ], "a refused run wrote an output or a checkpoint"
    # Only the catalog worker (it describes plugins and never sees data) started.
    started = [WORKER_LOG.fullmatch(path.name) for path in (run_dir / "worker-logs").iterdir()]
    levels = [match["level"] for match in started if match]
    assert len(levels) == 1, levels
    assert SECRET not in levels
    assert_key_absent(suite, run.result)

    # The control: with a plan that passes, the same file is read, and stops the run.
    suite.settings["sinks"]["results"]["clearance"] = SECRET
    control = run_cli_as_appuser(root_tier, appuser_args(root_tier, suite))
    assert control.result.code == 1, control.result.output
    assert "is not valid utf-8" in control.result.stderr
    assert server.stats.request_count == 0


def test_secret_suite_runs_end_to_end_in_sidecar_mode(
    root_tier: Tier, secret_suite_for: Callable[[str], tuple[SuiteFiles, OpenAIServer]]
) -> None:
    suite, server = secret_suite_for("secret")
    appuser, appplugin = root_tier.users["appuser"], root_tier.users["appplugin"]

    run = run_cli_as_appuser(root_tier, appuser_args(root_tier, suite))

    assert run.result.code == 0, run.result.output
    assert "STANDALONE MODE" not in run.result.stdout
    # The orchestrator logs each worker's own sandbox report: above OFFICIAL_SENSITIVE both
    # locks must be in force.
    secret_workers = re.findall(
        r"at SECRET \(group \d+, worker pid \d+\) sandboxed: (.*)", run.result.stderr
    )
    assert secret_workers
    assert all(
        w.startswith("full=True landlock=True") and w.endswith("seccomp=True")
        for w in secret_workers
    )
    # The key reached the server from the CLI's environment: every request was let in.
    assert dict(server.stats.statuses) == {200: ROWS}
    run_dir = suite.only_run_dir()
    recorded = manifest(run_dir)
    results_name = "base__results__results.csv"
    assert (recorded["status"], recorded["classification"]) == ("complete", SECRET)
    assert [(a["path"], a["classification"], a["rows"]) for a in recorded["artifacts"]] == [
        (results_name, SECRET, ROWS),
        ("base__summary__results.csv", SECRET, 1),
        ("report__report.html", SECRET, ROWS),
        ("report__workbook.xlsx", SECRET, ROWS),
    ]
    html = (run_dir / "report__report.html").read_text("utf-8")
    assert html.count("Classification: SECRET") >= 2, "a banner at the top and the bottom"
    summary = read_results(run_dir / "base__summary__results.csv")
    assert (summary.loc[0, "rows"], summary.loc[0, "errors"]) == (ROWS, 0)
    results_path = run_dir / results_name
    assert results_path.read_text("utf-8").splitlines()[0] == f"# classification: {SECRET}"
    results = read_results(results_path)
    assert list(results["id"]) == list(suite.row_ids)
    assert results["quality_score"].between(1, 5).all()
    assert results["quality_response_valid"].all()

    # Private to appuser: every file 0600, every directory 0700, appplugin reads none.
    written = [run_dir, *run_dir.rglob("*")]
    names = {path.name for path in written}
    assert {"audit.jsonl", "manifest.json", "checkpoint-base.jsonl", "worker-logs"} <= names
    for path in written:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (appuser.uid, appuser.gid), path
        assert stat.S_IMODE(info.st_mode) == (0o700 if path.is_dir() else 0o600), path
    private_files = [path for path in written if path.is_file()]
    assert all("errno" not in outcome for outcome in read_as(root_tier, "appuser", *private_files))
    assert read_as(root_tier, "appplugin", *private_files) == [{"errno": "EACCES"}] * len(
        private_files
    )

    # Worker logs: one file per worker, those of the SECRET pool classified SECRET.
    worker_logs = {
        match["pgid"]: (match["level"], path)
        for path in (run_dir / "worker-logs").iterdir()
        if (match := WORKER_LOG.fullmatch(path.name))
    }
    secret_pgids = {int(pgid) for pgid, (level, _) in worker_logs.items() if level == SECRET}
    assert secret_pgids, f"no SECRET worker log among {sorted(worker_logs)}"
    for level, path in worker_logs.values():
        assert path.read_text("utf-8").startswith(
            f"# elspeth worker stderr; classification: {level}; handle as {level} data\n"
        )

    # The audit log: SECRET grants, no row content, no answers.
    events = audit_events(run_dir)
    grants = [event for event in events if event["event"] == "frame_granted"]
    assert [(g["chunk"], g["rows"], g["level"]) for g in grants] == [
        (0, CHUNK_ROWS, SECRET),
        (1, CHUNK_ROWS, SECRET),
        (2, CHUNK_ROWS, SECRET),
    ]
    assert ROW_TEXT in results_path.read_text("utf-8")  # the string is the data's
    audit_text = (run_dir / "audit.jsonl").read_text("utf-8")
    assert ROW_TEXT not in audit_text
    assert ANSWER_TEXT not in audit_text
    assert_key_absent(suite, run.result)

    # The sandbox: the runtime keeps each worker's report in memory only (not in the audit,
    # operational or worker logs), so it is looked at from outside while the run goes. Above
    # OFFICIAL_SENSITIVE a worker refuses to start without Landlock and seccomp both in force
    # (no allow_partial_sandbox here); seccomp and no_new_privs are visible in /proc,
    # Landlock is not.
    secret_workers = [w for w in run.workers.values() if w.pgrp in secret_pgids]
    assert {w.pgrp for w in secret_workers} == secret_pgids, (
        f"SECRET worker groups {secret_pgids} not all seen among {run.workers}"
    )
    for worker in secret_workers:
        assert worker.uid == appplugin.uid
        assert (worker.seccomp, worker.no_new_privs) == ("2", "1"), worker


def test_the_same_secret_suite_in_standalone_mode_is_refused_before_reading(
    root_tier: Tier, secret_suite_for: Callable[[str], tuple[SuiteFiles, OpenAIServer]]
) -> None:
    suite, server = secret_suite_for("standalone")
    del suite.settings["sidecar"]
    del suite.settings["workers"]  # standalone workers run as the orchestrator's own user
    summary = suite.directory / "summary.json"

    run = run_cli_as_appuser(root_tier, appuser_args(root_tier, suite, "--json-summary", summary))

    assert run.result.code == 3, run.result.output
    assert "STANDALONE MODE" in run.result.stdout
    # The plan passed (everything is SECRET, every clearance too): the runner refuses the
    # standalone ceiling before the daemon is asked for anything. The daemon's own refusal
    # of the same levels is tested against it directly (tests/sidecar/test_operations.py).
    assert "standalone mode refuses levels above OFFICIAL_SENSITIVE" in run.result.stderr
    assert "run it with the deployed sidecar (sidecar: {mode: sidecar}) instead" in (
        run.result.stderr
    )
    reported = json.loads(summary.read_text("utf-8"))
    assert (reported["exit_code"], reported["status"]) == (3, "refused")
    assert reported["reason"].startswith("StandaloneCeilingError: standalone mode refuses")
    assert server.stats.request_count == 0
    run_dir = suite.only_run_dir()
    events = audit_events(run_dir)
    assert [e["mode"] for e in events if e["event"] == "authority_ready"] == ["standalone"]
    assert all(e["allowed"] for e in events if e["event"] == "clearance_decision")
    assert "frame_granted" not in {e["event"] for e in events}
    assert manifest(run_dir)["status"] == "refused"
    assert_key_absent(suite, run.result)
