"""Fixtures for end-to-end suite runs: a small CSV, settings YAML pointing at a real loopback
OpenAI-compatible server, and the real CLI (in-process or as a subprocess).

Every run gets its own ``--output-dir`` and ``--state-dir`` under the test's ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.support.openai_server import OpenAIServer, RecordedRequest

KEY_VARIABLE = "ELSPETH_SUITE_TEST_KEY"
#: Recognisable, so a test can search every file and stream for it.
SECRET_KEY = "sk-elspeth-SUITE-4b7d1e9a2c-never-leak"
MODEL_NAME = "loopback-model"
CLI_TIMEOUT = 120.0
#: The prompt names the row's id so a recorded request says which row it was for.
ROW_ID = re.compile(r"request (R\d{3})\b")


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str | os.PathLike[str]) -> CliResult:
    """``elspeth.cli.main`` in this process, its standard streams captured."""
    from elspeth.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse: --help, usage errors
            code = exit_.code if isinstance(exit_.code, int) else 2
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_command(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "elspeth.cli", *(str(arg) for arg in args)]


def run_cli_subprocess(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> CliResult:
    completed = subprocess.run(
        cli_command(*args),
        env=dict(os.environ if env is None else env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def row_id_of(request: RecordedRequest) -> str:
    """Which row a request was for, read from its prompt."""
    messages = request.body["messages"]
    text = " ".join(str(message["content"]) for message in messages)
    found = ROW_ID.search(text)
    assert found is not None, "a request whose prompt names no row"
    return found.group(1)


def requests_per_row(server: OpenAIServer) -> Counter[str]:
    return Counter(row_id_of(request) for request in server.stats.requests)


def completion(content: str) -> bytes:
    """A well-formed chat completion whose answer text is ``content``."""
    return json.dumps(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    ).encode()


@dataclass
class SuiteFiles:
    """A suite under construction: edit ``settings`` then :meth:`write`."""

    directory: Path
    settings: dict[str, Any]
    row_ids: tuple[str, ...]

    @property
    def path(self) -> Path:
        return self.directory / "suite.yaml"

    @property
    def output_dir(self) -> Path:
        return self.directory / "out"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def defaults(self) -> dict[str, Any]:
        defaults: dict[str, Any] = self.settings["defaults"]
        return defaults

    def write(self) -> Path:
        self.path.write_text(yaml.safe_dump(self.settings, sort_keys=False), "utf-8")
        return self.path

    def args(self, *extra: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
        """``--settings`` (written now), ``--output-dir`` and ``--state-dir``, then ``extra``."""
        return [
            "--settings",
            self.write(),
            "--output-dir",
            self.output_dir,
            "--state-dir",
            self.state_dir,
            *extra,
        ]

    def run_dirs(self) -> list[Path]:
        if not self.output_dir.exists():
            return []
        return sorted(p for p in self.output_dir.iterdir() if p.is_dir() and p.name[0] != ".")

    def only_run_dir(self) -> Path:
        runs = self.run_dirs()
        assert len(runs) == 1, f"expected one run directory, found {runs}"
        return runs[0]


def manifest(run_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text("utf-8"))
    return loaded


def audit_events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "audit.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def read_results(path: Path) -> pd.DataFrame:
    """A CSV output (its first line is the classification banner)."""
    lines = path.read_text("utf-8").splitlines(keepends=True)
    assert lines[0].startswith("# classification: ")
    return pd.read_csv(io.StringIO("".join(lines[1:])), keep_default_na=True)


def summary_json(result: CliResult) -> dict[str, Any]:
    """The ``--json-summary -`` document: the JSON object after the tables on stdout."""
    text = "\n" + result.stdout
    start = text.index("\n{\n") + 1  # the only line that is a lone "{"
    loaded: dict[str, Any] = json.loads(text[start:])
    return loaded


def write_rows(path: Path, count: int) -> tuple[str, ...]:
    ids = tuple(f"R{i:03d}" for i in range(count))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for number, row_id in enumerate(ids):
            writer.writerow([row_id, f"The bin outside house {number} was not collected."])
    return ids


MakeSuite = Callable[..., SuiteFiles]


def scoring_plugins(clearance: str) -> dict[str, Any]:
    """Plugin instances that read the ``quality`` criterion's JSON score into ``quality_score``
    (``score``) and summarise it per run (``summary``: a pass is a score of 3 or more)."""
    return {
        "score": {
            "plugin": "score_extractor",
            "clearance": clearance,
            "params": {
                "source": "quality_response",
                "json_field": "score",
                "output": "quality_score",
            },
        },
        "summary": {
            "plugin": "score_summary",
            "clearance": clearance,
            "params": {"criteria": "quality", "pass_threshold": 3},
        },
    }


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, SECRET_KEY)
    return SECRET_KEY


def build_suite(directory: Path, server: OpenAIServer | None, *, rows: int = 20) -> SuiteFiles:
    """One experiment, one criterion, a CSV sink, no cache, no plugins, ``rows`` rows; with a
    server, an ``openai`` model at it (key from ``KEY_VARIABLE``), otherwise the ``mock``."""
    directory.mkdir(parents=True)
    row_ids = write_rows(directory / "data.csv", rows)
    model: dict[str, Any] = (
        {"type": "mock", "clearance": "OFFICIAL"}
        if server is None
        else {
            "type": "openai",
            "clearance": "OFFICIAL",
            "base_url": server.base_url,
            "model": MODEL_NAME,
            "api_key_env": KEY_VARIABLE,
            "timeout": 10,
        }
    )
    settings: dict[str, Any] = {
        "suite": {"name": "loopback-e2e"},
        "datasource": {
            "type": "csv",
            "path": "data.csv",
            "classification": "OFFICIAL",
            "clearance": "OFFICIAL",
            "columns": {"id": "string", "text": "string"},
        },
        "models": {"loopback": model},
        "prompt_packs": {
            "rate": {"criteria": {"quality": "Rate request {{ id }}: {{ text }}"}},
        },
        "sinks": {"results": {"type": "csv", "clearance": "OFFICIAL"}},
        "defaults": {
            "model": "loopback",
            "prompt_pack": "rate",
            "sinks": ["results"],
            "concurrency": 4,
            "max_retries": 2,
            "cache": False,
        },
        "experiments": [{"name": "base", "baseline": True}],
    }
    return SuiteFiles(directory, settings, row_ids)


@pytest.fixture
def make_suite(tmp_path: Path, api_key: str) -> MakeSuite:
    """``make_suite(server, rows=20)``: :func:`build_suite` in this test's ``tmp_path``; the test
    edits ``settings`` for what it checks."""

    def make(server: OpenAIServer | None, *, rows: int = 20) -> SuiteFiles:
        return build_suite(tmp_path / "suite", server, rows=rows)

    return make
