"""The read-up rule (data at L may go to a component cleared to C only if L <= C) is decided by
one function, :func:`elspeth.security.may_read`; everything else calls it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

import elspeth
from elspeth.security import SecurityLevel, may_read

SOURCE: Final = Path(elspeth.__file__).parent
_WORDS: Final = ("clearance", "ceiling")
_ORDERINGS: Final = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_RULE: Final = ("security/_levels.py", "may_read")


def _names(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            names.add(sub.attr)
    return names


def _clearance_comparisons() -> dict[str, list[str]]:
    """Ordering comparisons with a clearance or ceiling on one side, by file, outside the rule."""
    found: dict[str, list[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if (relative, getattr(node, "name", None)) == _RULE:
                skip.update(id(sub) for sub in ast.walk(node))
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, _ORDERINGS) for op in node.ops):
                continue
            if any(word in name.lower() for name in _names(node) for word in _WORDS):
                found.setdefault(relative, []).append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_clearance_is_compared_outside_the_read_rule() -> None:
    found = _clearance_comparisons()
    assert not found, f"call elspeth.security.may_read instead of comparing: {found}"


@pytest.mark.parametrize("clearance", list(SecurityLevel))
@pytest.mark.parametrize("level", list(SecurityLevel))
def test_the_rule_is_no_read_up(clearance: SecurityLevel, level: SecurityLevel) -> None:
    assert may_read(clearance, level) is (level.rank <= clearance.rank)
