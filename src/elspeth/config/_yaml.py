"""YAML loading that remembers where every key was written, for errors that name the line and
column.

Also refuses duplicate keys (PyYAML silently keeps the last one, which hides mistakes) and
substitutes ``${NAME}`` references from the environment in string values. A substituted value is
never echoed in an error: only the variable's name is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from elspeth.config._errors import SettingsError, SettingsProblem

KeyPath = tuple[str | int, ...]
Position = tuple[int, int]
"""(line, column), both 1-based."""

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{([^}]*)\}?")


def dotted(path: KeyPath) -> str:
    """``("experiments", 0, "name")`` → ``experiments[0].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Walker:
    def __init__(self, file: Path, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.lines: dict[KeyPath, int] = {}
        self.keys: dict[KeyPath, Position] = {}
        self.values: dict[KeyPath, Position] = {}
        self.problems: list[SettingsProblem] = []
        self.substituted: set[KeyPath] = set()

    def problem(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        line, column = _position(node)
        self.problems.append(SettingsProblem(self.file, line, dotted(path), message, column))

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines[path] = node.start_mark.line + 1
        self.values[path] = _position(node)
        self.keys.setdefault(path, self.values[path])
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
                    self.problem(key_node, path, f"keys must be plain strings, not {key!r}")
                    continue
                if key in result:
                    self.problem(key_node, (*path, key), "duplicate key (it appears twice)")
                    continue
                self.keys[(*path, key)] = _position(key_node)
                result[key] = self.build(value_node, (*path, key))
                self.lines[(*path, key)] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        value = _construct_scalar(node)
        if isinstance(value, str) and "$" in value:
            return self.substitute(node, path, value)
        return value

    def substitute(self, node: yaml.Node, path: KeyPath, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1)
            if name is None:
                self.problem(
                    node, path, f"malformed reference {match.group(0)!r}; write ${{NAME}} or $$"
                )
                return ""
            if name not in self.environ:
                self.problem(node, path, f"environment variable {name} is not set")
                return ""
            self.substituted.add(path)
            return self.environ[name]

        return _REFERENCE.sub(replace, text)


def _position(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _construct_scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class LoadedYaml:
    """The parsed document, where each key was written, and which values came from ${VARS}."""

    def __init__(
        self,
        data: Any,
        lines: dict[KeyPath, int],
        substituted: set[KeyPath],
        file: Path,
        *,
        keys: dict[KeyPath, Position] | None = None,
        values: dict[KeyPath, Position] | None = None,
    ) -> None:
        self.data = data
        self.lines = lines
        self.substituted = substituted
        self.file = file
        self.keys = keys or {}
        self.values = values or {}

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path`` or of its nearest ancestor that was written."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def position_of(self, path: KeyPath, *, value: bool = False) -> tuple[int | None, int | None]:
        """(line, column) of ``path``'s key (or, with ``value``, of its value), or of its nearest
        ancestor that was written; ``(None, None)`` for an empty document."""
        marks = self.values if value else self.keys
        while path:
            if path in marks:
                return marks[path]
            path = path[:-1]
            marks = self.keys
        root: tuple[int | None, int | None] = (self.lines.get(()), None)
        return self.keys.get((), root)

    def problem(self, path: KeyPath, message: str, *, value: bool = False) -> SettingsProblem:
        """A problem at ``path`` (its key, or with ``value`` its value), named by ``path``."""
        line, column = self.position_of(path, value=value)
        return SettingsProblem(self.file, line, dotted(path), message, column)


def load_yaml(file: Path, environ: Mapping[str, str] | None = None) -> LoadedYaml:
    """Parse ``file``; raise :class:`SettingsError` listing every problem found."""
    environ = os.environ if environ is None else environ
    try:
        text = file.read_text("utf-8")
    except FileNotFoundError:
        raise SettingsError([SettingsProblem(file, None, "", "file not found")]) from None
    except PermissionError:
        raise SettingsError([SettingsProblem(file, None, "", "permission denied")]) from None
    except UnicodeDecodeError as error:
        raise SettingsError(
            [SettingsProblem(file, None, "", f"not UTF-8 (byte offset {error.start})")]
        ) from None
    except IsADirectoryError:
        raise SettingsError([SettingsProblem(file, None, "", "is a directory")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise SettingsError(
            [SettingsProblem(file, line, "", f"invalid YAML: {error.problem}", column)]
        ) from None
    walker = _Walker(file, environ)
    data = walker.build(root, ()) if root is not None else {}
    if walker.problems:
        raise SettingsError(walker.problems)
    return LoadedYaml(
        data, walker.lines, walker.substituted, file, keys=walker.keys, values=walker.values
    )
