"""How every report shows its classification: one text and one colour pair per level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from elspeth.security import SecurityLevel


@dataclass(frozen=True, slots=True)
class Marking:
    """The banner for one level: its text and its colours (background, text), as CSS hex."""

    level: SecurityLevel
    background: str
    foreground: str

    @property
    def text(self) -> str:
        return f"Classification: {self.level.name}"


# Sensitivity rises from grey through green, amber and blue to red; every pair keeps a contrast
# ratio of at least 4.5:1 (WCAG AA) so the banner is legible on screen and in print.
MARKINGS: Final[Mapping[SecurityLevel, Marking]] = MappingProxyType(
    {
        SecurityLevel.UNOFFICIAL: Marking(SecurityLevel.UNOFFICIAL, "#e5e7eb", "#111827"),
        SecurityLevel.OFFICIAL: Marking(SecurityLevel.OFFICIAL, "#166534", "#ffffff"),
        SecurityLevel.OFFICIAL_SENSITIVE: Marking(
            SecurityLevel.OFFICIAL_SENSITIVE, "#b45309", "#ffffff"
        ),
        SecurityLevel.PROTECTED: Marking(SecurityLevel.PROTECTED, "#1d4ed8", "#ffffff"),
        SecurityLevel.SECRET: Marking(SecurityLevel.SECRET, "#b91c1c", "#ffffff"),
    }
)
