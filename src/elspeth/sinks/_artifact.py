"""What a sink reports for a file (or an archive member) it wrote, and the one way every sink
writes that file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import pyarrow as pa

from elspeth.errors import ElspethError
from elspeth.security import SecurityLevel
from elspeth.sinks._errors import SinkError
from elspeth.sinks._files import atomic_private_file, file_digest_hex


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


@dataclass(frozen=True, slots=True)
class WrittenMember:
    """One complete output held in memory, to become a member of a larger output (a bundle's
    Parquet file): its name, bytes, level, rows, format and the seal audit ids of the release
    checks made before it was written."""

    name: str
    content: bytes = field(repr=False)
    level: SecurityLevel
    rows: int
    format: str
    seal_audit_ids: tuple[int, ...]


WRITE_FAILURES: Final = (OSError, ValueError, TypeError, pa.ArrowException)
"""What a writer may raise that is not already an :class:`ElspethError`."""


def write_failure(destination: Path | str, error: BaseException, outcome: str) -> SinkError:
    """The :class:`SinkError` for ``error`` raised while writing ``destination``.

    Library messages can quote cell values, which are content: only an operating-system error's
    own description is repeated.
    """
    what = type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        what = f"{what}: {error.strerror}"
    return SinkError(destination, f"writing failed ({what}); {outcome}")


def write_artifact(
    destination: Path,
    write: Callable[[BinaryIO], int],
    *,
    level: SecurityLevel,
    format: str,
    seal_audit_ids: tuple[int, ...],
) -> WrittenArtifact:
    """Run ``write`` (which returns the rows it wrote) into a private file that becomes
    ``destination`` atomically; call it only once every frame has passed its release check.

    Raises :class:`SinkError`, with nothing left behind, if writing fails.
    """
    try:
        with atomic_private_file(destination) as handle:
            rows = write(handle)
    except ElspethError:
        raise
    except WRITE_FAILURES as error:
        raise write_failure(destination, error, "no file was left behind") from None
    return WrittenArtifact(
        path=destination,
        level=level,
        rows=rows,
        digest_hex=file_digest_hex(destination),
        format=format,
        seal_audit_ids=seal_audit_ids,
    )
