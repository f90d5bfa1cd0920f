"""Security failures: one hierarchy, each message says what to change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from elspeth.errors import ElspethError

if TYPE_CHECKING:
    from elspeth.security._plan import Violation


class SecurityError(ElspethError):
    """A security rule refused an operation. Never caught and ignored by Elspeth itself."""


class LevelParseError(SecurityError, ValueError):
    """A security level string is empty or not one of the known levels."""


class ClearanceError(SecurityError):
    """Data would reach a component whose clearance is below the data's level (read up)."""


class ClearancePlanError(ClearanceError):
    """The static clearance plan found one or more violations; all are listed at once."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations: tuple[Violation, ...] = tuple(violations)
        lines = [f"clearance plan refused: {len(self.violations)} violation(s)"]
        lines.extend(f"  - {violation.describe()}" for violation in self.violations)
        super().__init__("\n".join(lines))


class FrameConstructionError(SecurityError):
    """Someone tried to make or copy a SecureDataFrame outside the seal authority."""


class SealError(SecurityError):
    """A frame's seal, level or digest does not match what the seal authority registered."""


class AuthorityError(SecurityError):
    """The seal authority is unreachable, refused, or answered in a way that cannot be trusted.

    Security operations are never retried: the run fails closed.
    """


class DigestError(ElspethError):
    """A frame cannot be digested canonically."""


class UnsupportedColumnError(DigestError):
    """A column's dtype has no canonical serialization; the message names column and dtype."""
