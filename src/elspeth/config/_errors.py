"""Settings problems, all reported together with file, line and key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elspeth.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One problem at one place: ``file:line: key.path: message``."""

    file: Path
    line: int | None
    key: str
    message: str

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        return f"{where}: {self.key or '(top level)'}: {self.message}"


class SettingsError(ConfigurationError):
    """The settings file has one or more problems; every one is listed in the message."""

    def __init__(self, problems: Sequence[SettingsProblem]) -> None:
        self.problems = tuple(problems)
        lines = [f"{len(self.problems)} problem(s) in the settings:"]
        lines.extend(f"  {problem.describe()}" for problem in self.problems)
        super().__init__("\n".join(lines))
