"""Settings problems, all reported together with file, line, column and key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elspeth.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One problem at one place: ``file:line:column: key.path: message``.

    ``line`` and ``column`` are 1-based; either is ``None`` when the problem has no place in the
    file (the file itself is missing, say). The same shape carries warnings.
    """

    file: Path
    line: int | None
    key: str
    message: str
    column: int | None = None

    @property
    def where(self) -> str:
        if self.line is None:
            return str(self.file)
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"

    def describe(self) -> str:
        return f"{self.where}: {self.key or '(top level)'}: {self.message}"


class SettingsError(ConfigurationError):
    """The settings file has one or more problems; every one is listed in the message."""

    def __init__(self, problems: Sequence[SettingsProblem]) -> None:
        self.problems = tuple(problems)
        lines = [f"{len(self.problems)} problem(s) in the settings:"]
        lines.extend(f"  {problem.describe()}" for problem in self.problems)
        super().__init__("\n".join(lines))
