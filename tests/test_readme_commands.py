"""The README's two set-up commands: exactly two, and the first really runs the main job.

The second (the test command) is what CI runs through .ci/run, so it is not re-run from here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from elspeth.security import canonical_digest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README's set-up section has no bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands() -> None:
    assert readme_commands() == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "exec bash scripts/test.sh" in ci


@pytest.mark.integration
def test_first_command_seals_the_sample_and_prints_the_plan(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "ELSPETH_VENV": sys.prefix,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "COLUMNS": "160",
    }
    command = readme_commands()[0].split()
    result = subprocess.run(
        command, check=False, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    sample = resources.files("elspeth") / "_data" / "service_requests.csv"
    with resources.as_file(sample) as path:
        expected = canonical_digest(pd.read_csv(path)).hex()
    assert "classification OFFICIAL" in result.stdout
    assert "300 rows x 7 columns" in result.stdout
    assert f"digest         {expected}" in result.stdout
    assert "seal           verified by the daemon" in result.stdout
    assert "Clearance plan" in result.stdout
    assert "REFUSED" not in result.stdout
    assert "STANDALONE MODE" in result.stderr
