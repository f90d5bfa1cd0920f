"""CLI tests use the suite fixtures' settings builder with the offline ``mock`` model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.suite.conftest import SuiteFiles, build_suite


@pytest.fixture
def suite(tmp_path: Path) -> SuiteFiles:
    return build_suite(tmp_path / "suite", None, rows=20)
