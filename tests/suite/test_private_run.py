"""What a run leaves behind is private and holds no secret: one real run as a subprocess under a
permissive umask, with an API key in its environment that the server requires (and echoes back
in a 401 body, as some services do), a worker plugin and the response cache on."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.suite.conftest import (
    CLI_TIMEOUT,
    KEY_VARIABLE,
    SECRET_KEY,
    CliResult,
    SuiteFiles,
    build_suite,
    cli_command,
)
from tests.support.openai_server import OpenAIServer, Reply, ServerConfig

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class FinishedRun:
    suite: SuiteFiles
    result: CliResult


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedRun]:
    with OpenAIServer(ServerConfig(api_key=SECRET_KEY)) as server:
        suite = build_suite(tmp_path_factory.mktemp("private") / "suite", server, rows=8)
        suite.defaults.update(
            concurrency=1, max_retries=0, cache=True, row_plugins=["shape"], max_error_rate=0.5
        )
        suite.settings["plugins"] = {
            "shape": {
                "plugin": "regex_validator",
                "clearance": "OFFICIAL",
                "params": {"source": "quality_response", "pattern": "score"},
            }
        }
        echoed = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET_KEY}"}})
        server.script(Reply.error(401, body=echoed.encode()))
        result = run_with_wide_umask(
            cli_command(
                *suite.args(
                    "--log-level", "debug", "--json-summary", suite.output_dir / "summary.json"
                )
            ),
            {**os.environ, KEY_VARIABLE: SECRET_KEY},
        )
        assert server.stats.request_count == 8
        yield FinishedRun(suite, result)


def run_with_wide_umask(command: list[str], env: dict[str, str]) -> CliResult:
    """``command`` started by a shell that first sets umask 000 (the arguments stay an argv)."""
    completed = subprocess.run(
        ["/bin/sh", "-c", 'umask 000 && exec "$@"', "sh", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def written_paths(run: FinishedRun) -> list[Path]:
    roots = [run.suite.output_dir, run.suite.state_dir]
    return sorted(path for root in roots for path in [root, *root.rglob("*")])


def test_the_run_completed_with_the_401_recorded_as_error(finished_run: FinishedRun) -> None:
    assert finished_run.result.code == 0, finished_run.result.output
    summary = json.loads((finished_run.suite.output_dir / "summary.json").read_text("utf-8"))
    assert summary["status"] == "complete_with_errors"
    run_dir = finished_run.suite.only_run_dir()
    events = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    kinds = [e["error_kind"] for e in events if e["event"] == "llm_result"]
    assert kinds.count("client_error") == 1


def test_api_key_appears_nowhere(finished_run: FinishedRun) -> None:
    searched = 0
    for path in written_paths(finished_run):
        if path.is_file():
            assert SECRET_KEY.encode() not in path.read_bytes(), f"the API key is in {path}"
            searched += 1
    assert searched >= 6  # manifest, audit, checkpoint, output, cache, checkpoint key...
    assert (finished_run.suite.only_run_dir() / "worker-logs").is_dir()
    assert SECRET_KEY not in finished_run.result.stdout
    assert SECRET_KEY not in finished_run.result.stderr
    assert "STANDALONE MODE" in finished_run.result.stdout  # the streams were really captured


def test_everything_written_is_private_despite_umask_000(finished_run: FinishedRun) -> None:
    checked = {"dir": 0, "file": 0}
    for path in written_paths(finished_run):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path} is {mode:o}"
            checked["dir"] += 1
        else:
            assert mode == 0o600, f"{path} is {mode:o}"
            checked["file"] += 1
    cache_files = list((finished_run.suite.output_dir / ".cache").rglob("*"))
    assert cache_files, "the response cache was not written"
    assert checked["dir"] >= 4
    assert checked["file"] >= 6
