"""No dead code in src/elspeth: vulture, configured in ``[tool.vulture]`` in pyproject.toml.

What vulture cannot see being used (plugins loaded by name, template fields, protocol callbacks)
is listed with its reason in ``tests/vulture_whitelist.py``; anything else it reports is deleted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def vulture() -> str:
    found = shutil.which("vulture", path=str(Path(sys.executable).parent)) or shutil.which(
        "vulture"
    )
    if found is None:
        message = 'vulture is not installed (pip install -c constraints.txt -e ".[test]")'
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_vulture_finds_no_dead_code() -> None:
    done = subprocess.run(
        [vulture()],  # paths, confidence and ignores come from pyproject.toml
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (
        "dead code (delete it, or whitelist it with its reason in tests/vulture_whitelist.py):\n"
        + done.stdout
        + done.stderr
    )


def test_vulture_is_configured_for_the_source_and_the_whitelist() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["vulture"]
    assert config["paths"] == ["src/elspeth", "tests/vulture_whitelist.py"]
    assert config["min_confidence"] <= 60
