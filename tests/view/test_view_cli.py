"""``elspeth view`` as a user starts it: a real process that prints its URL, answers the page
through it, refuses without the token, and exits 0 on Ctrl-C; bad arguments exit 2 naming them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.suite.conftest import cli_command, run_cli

pytestmark = pytest.mark.integration

URL = re.compile(r"^open (http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{32,})$", re.MULTILINE)


def _wait_for_url(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    seen = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        found = URL.search(seen)
        if found:
            return found.group(1)
    raise AssertionError(f"no URL printed; saw {seen!r}")


def test_the_command_serves_the_run_and_stops_on_ctrl_c(sample_run: Path) -> None:
    process = subprocess.Popen(
        cli_command("view", sample_run),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = _wait_for_url(process, time.monotonic() + 60)
        base, token = url.split("/?token=")
        request = urllib.request.Request(f"{base}/api/summary", headers={"X-Elspeth-Token": token})
        with urllib.request.urlopen(request, timeout=10) as answer:
            summary = json.load(answer)
        assert summary["runs"][0]["run_id"] == sample_run.name
        with urllib.request.urlopen(url, timeout=10) as page:
            assert b"Elspeth run viewer" in page.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/summary", timeout=10)
        assert refused.value.code == 403
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert token not in process.stderr.read()  # the token is printed once, on stdout only


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["/nonexistent/run"], "no run manifest; is /nonexistent/run a run directory?"),
        (["--max-level", "TOPMOST"], "--max-level: "),
        (["--port", "70000"], "'70000' is not a port number from 0 to 65535"),
    ],
)
def test_bad_arguments_exit_2_naming_them(
    sample_run: Path, arguments: list[str], message: str
) -> None:
    given = arguments if arguments[0].startswith("/") else [str(sample_run), *arguments]
    result = run_cli("view", *given)
    assert result.code == 2, result.output
    assert message in result.stderr


def test_three_runs_are_refused(sample_run: Path) -> None:
    result = run_cli("view", sample_run, sample_run, sample_run)
    assert result.code == 2
    assert "give one run directory, or two to compare" in result.stderr
