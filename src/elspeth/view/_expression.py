"""The viewer's filter expressions, e.g. ``urgency_score < 3 and region == "north"``.

An expression is parsed by Python's own parser and then only a small, listed part of its grammar
is accepted (comparisons, ``and``/``or``/``not``, ``in`` a list of literals, names and
literals); it becomes a pyarrow compute expression and is never evaluated as Python. Anything
else is refused with a message that names what was found.

Names: an input column (``region``), an experiment's column (``terse_prompt.urgency_score``), or
a bare column of the baseline's (``urgency_score``). ``A.x`` needs ``A`` to be an experiment
whose name is a Python identifier.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pyarrow.compute as pc

from elspeth.view._errors import ViewError

MAX_LENGTH: Final = 1000
MAX_NODES: Final = 200

_COMPARISONS: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}
_LITERALS: Final = (str, int, float, bool)


@dataclass(frozen=True)
class Filter:
    """A compiled filter and the columns it reads (so it can run on just those)."""

    expression: pc.Expression
    columns: frozenset[str]


def compile_filter(text: str, resolve: Callable[[str], str | None]) -> Filter:
    """``text`` as a pyarrow expression; ``resolve`` maps a name (``x`` or ``A.x``) to its column
    in the side-by-side table, or None when there is no such column."""
    if len(text) > MAX_LENGTH:
        raise ViewError(f"filter: {len(text)} characters; at most {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ViewError(f"filter: not an expression ({error.msg})") from None
    except (ValueError, RecursionError, MemoryError):  # a NUL byte; nesting past the parser
        raise ViewError("filter: not an expression (a NUL byte, or nested too deeply)") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ViewError(f"filter: {nodes} parts; at most {MAX_NODES}")
    compiler = _Compiler(resolve)
    expression = compiler.condition(tree.body)
    return Filter(expression, frozenset(compiler.columns))


class _Compiler:
    def __init__(self, resolve: Callable[[str], str | None]) -> None:
        self.resolve = resolve
        self.columns: set[str] = set()

    def condition(self, node: ast.expr) -> pc.Expression:
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(value) for value in node.values]
            combined = parts[0]
            for part in parts[1:]:
                combined = combined & part if isinstance(node.op, ast.And) else combined | part
            return combined
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.condition(node.operand)
        if isinstance(node, ast.Compare):
            return self.comparison(node)
        if self._is_name(node):
            return self.field(node) == True  # noqa: E712 - a pyarrow expression, not a bool
        raise ViewError(f"filter: {_describe(node)} is not a condition")

    def comparison(self, node: ast.Compare) -> pc.Expression:
        operands = [node.left, *node.comparators]
        result: pc.Expression | None = None
        for left, operator, right in zip(operands, node.ops, operands[1:], strict=False):
            if isinstance(operator, (ast.In, ast.NotIn)):
                values = self.literal_list(right)
                part = self.value(left).isin(values)
                part = ~part if isinstance(operator, ast.NotIn) else part
            elif type(operator) in _COMPARISONS:
                part = _COMPARISONS[type(operator)](self.value(left), self.value(right))
            else:
                raise ViewError(f"filter: the operator {type(operator).__name__} is not allowed")
            result = part if result is None else result & part
        assert result is not None
        return result

    def value(self, node: ast.expr) -> Any:
        if self._is_name(node):
            return self.field(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand)
            if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                return -inner
        if isinstance(node, ast.Constant) and isinstance(node.value, _LITERALS):
            return node.value
        raise ViewError(f"filter: {_describe(node)} is not a column name or a literal")

    def literal_list(self, node: ast.expr) -> list[Any]:
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            values = [self.value(item) for item in node.elts]
            if all(isinstance(value, _LITERALS) for value in values):
                return values
        raise ViewError('filter: \'in\' needs a list of literals, such as ["north", "west"]')

    @staticmethod
    def _is_name(node: ast.expr) -> bool:
        return isinstance(node, ast.Name) or (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        )

    def field(self, node: ast.expr) -> pc.Expression:
        if isinstance(node, ast.Name):
            name = node.id
        else:
            assert isinstance(node, ast.Attribute)
            assert isinstance(node.value, ast.Name)
            name = f"{node.value.id}.{node.attr}"
        column = self.resolve(name)
        if column is None:
            raise ViewError(f"filter: no column {name!r}")
        self.columns.add(column)
        return pc.field(column)


def _describe(node: ast.expr) -> str:
    return f"{type(node).__name__.lower()} at column {node.col_offset + 1}"
