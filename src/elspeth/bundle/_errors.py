"""Bundle failures. Messages name files and members; they never hold key material or row content."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from elspeth.errors import ConfigurationError, ElspethError


class BundleError(ElspethError):
    """Base class of every failure to write, sign or verify a reproducibility bundle."""


class BundleKeyError(BundleError, ConfigurationError):
    """A signing or verification key file is missing, malformed or readable by the wrong users.

    The message names the file and what fixes it; it never shows key material.
    """


class BundleFileError(BundleError):
    """The bundle path cannot be opened as a regular file; nothing was examined."""


class BundleVerificationError(BundleError):
    """The bundle failed verification. ``problems`` lists every difference found, one line each."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = Path(path)
        self.problems = tuple(problems)
        count = len(self.problems)
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{path}: bundle failed verification ({count} {noun}):\n{listed}")
