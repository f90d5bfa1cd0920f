"""The documentation names only modules that exist, and its layout drawing is the real tree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
ARCHITECTURE = ROOT / "docs" / "architecture.md"

SOURCE_PATH = re.compile(r"src/elspeth/[A-Za-z0-9_./-]*")
TREE_ENTRY = re.compile(r"^((?:│   |    )*)(?:├── |└── )(\S.*?)(?:\s{2,}.*)?$")
SKIPPED_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}


def named_paths(text: str) -> set[str]:
    return {match.rstrip(".,:;)") for match in SOURCE_PATH.findall(text)}


def layout_entries(text: str) -> list[str]:
    """The paths drawn in the layout tree (a ``text`` block whose first line is the root)."""
    block = text.split("## Layout", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    root, stack, paths = lines[0].rstrip("/"), [], []
    for line in lines[1:]:
        entry = TREE_ENTRY.match(line)
        if entry is None:
            continue
        depth = len(entry.group(1)) // 4
        names = [name.strip() for name in entry.group(2).split(",")]
        del stack[depth:]
        paths.extend("/".join([root, *stack, name.rstrip("/")]) for name in names)
        stack.append(names[0].rstrip("/"))
    return paths


def test_every_source_path_in_the_docs_exists() -> None:
    missing = [
        f"{doc.name}: {path}"
        for doc in DOCS
        for path in sorted(named_paths(doc.read_text("utf-8")))
        if not (ROOT / path).exists()
    ]
    assert not missing, "docs name modules that do not exist:\n" + "\n".join(missing)


def test_the_architecture_names_the_suite_runner_modules() -> None:
    named = named_paths(ARCHITECTURE.read_text("utf-8"))
    for module in ("_plan", "_runner", "_experiment", "_rows", "_outputs"):
        assert f"src/elspeth/suite/{module}.py" in named, module


def test_the_layout_drawing_is_the_real_tree() -> None:
    entries = layout_entries(ARCHITECTURE.read_text("utf-8"))
    assert len(entries) > 50
    missing = [path for path in entries if not (ROOT / path).exists()]
    assert not missing, "architecture.md draws paths that do not exist:\n" + "\n".join(missing)
    drawn = {path.removeprefix("src/elspeth/").split("/", 1)[0] for path in entries}
    packages = {
        child.name
        for child in (ROOT / "src" / "elspeth").iterdir()
        if child.is_dir() and (child / "__init__.py").exists()
    }
    assert packages <= drawn, f"packages missing from the drawing: {sorted(packages - drawn)}"


def test_no_file_refers_to_a_design_document_that_does_not_exist() -> None:
    stale = "DESIGN" + ".md"
    hits = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(directory, name)
            try:
                text = path.read_text("utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if stale in text:
                hits.append(str(path.relative_to(ROOT)))
    assert not hits, f"refer to docs/security-model.md instead: {hits}"


def test_the_orchestrator_does_not_import_the_plugin_machinery() -> None:
    """architecture.md: the registry and declaration checks run in workers only."""
    code = (
        "import sys, elspeth.cli, elspeth.suite._runner, elspeth.suite._validate\n"
        "print(sorted(m for m in sys.modules if m.startswith('elspeth.plugins')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "['elspeth.plugins', 'elspeth.plugins._api']"
