"""What a sink reports for a file it wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elspeth.security import SecurityLevel


@dataclass(frozen=True, slots=True)
class WrittenArtifact:
    """One complete output file: where, at which level, how many rows, its BLAKE3 digest.

    ``seal_audit_ids`` are the seal authority's audit ids of the release checks made before
    writing, for the run's audit log.
    """

    path: Path
    level: SecurityLevel
    rows: int
    digest_hex: str
    format: str
    seal_audit_ids: tuple[int, ...]
