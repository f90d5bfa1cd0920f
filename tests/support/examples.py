"""The bundled example suites as settings a test can change and write elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).parents[2] / "examples"


def example_settings(name: str) -> dict[str, Any]:
    """``examples/<name>`` as a mapping, its datasource path made absolute so that the
    settings can be written to any directory."""
    settings: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text("utf-8"))
    settings["datasource"]["path"] = str(EXAMPLES / settings["datasource"]["path"])
    return settings


def write_settings(settings: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "suite.yaml"
    path.write_text(yaml.safe_dump(settings), "utf-8")
    return path
