"""The README's two set-up commands: exactly two, and the first really runs the main job.

The second (the test command) is what CI runs through .ci/run, so it is not re-run from here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sample_outputs import data_digests

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
def test_first_command_runs_the_sample_suite(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "ELSPETH_VENV": sys.prefix,
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    output = tmp_path / "out"
    command = [*readme_commands()[0].split(), "--output-dir", str(output)]
    result = subprocess.run(
        command, check=False, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "STANDALONE MODE" in result.stdout
    assert "Clearance plan" in result.stdout
    assert "REFUSED" not in result.stdout
    (run_dir,) = [path for path in output.iterdir() if not path.name.startswith(".")]
    assert f"outputs: {run_dir}" in result.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text("utf-8"))
    assert manifest["status"] == "complete"
    written = {Path(artifact["path"]).name for artifact in manifest["artifacts"]}
    for experiment in ("baseline", "terse_prompt", "second_opinion"):
        assert f"{experiment}__results__results_csv.csv" in written
    assert "compare__versus_baseline__terse_prompt__results_csv.csv" in written
    # Every data file holds what a run of the sample held before the runner was rebuilt.
    expected = json.loads((ROOT / "tests" / "vectors" / "sample_outputs.json").read_text("utf-8"))
    assert data_digests(run_dir) == expected


def test_examples_hold_the_bundled_sample() -> None:
    bundled = ROOT / "src" / "elspeth" / "_data"
    examples = ROOT / "examples"
    for name, copy in (("sample_suite.yaml", "suite.yaml"), ("service_requests.csv", None)):
        assert (bundled / name).read_bytes() == (examples / (copy or name)).read_bytes()


def test_committed_settings_schema_is_current() -> None:
    from elspeth.config import settings_json_schema

    committed = json.loads((ROOT / "docs" / "settings.schema.json").read_text("utf-8"))
    assert committed == settings_json_schema(), (
        "regenerate with: python -m elspeth.cli --schema > docs/settings.schema.json"
    )
