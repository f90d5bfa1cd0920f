"""The sink: re-checks clearance and seal, then writes one private file atomically (or, for a
member of a larger output, into memory)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from elspeth.errors import ElspethError
from elspeth.security import SecureDataFrame, SecurityLevel, join_all
from elspeth.sinks._artifact import (
    WRITE_FAILURES,
    WrittenArtifact,
    WrittenMember,
    write_artifact,
    write_failure,
)
from elspeth.sinks._config import SinkConfig
from elspeth.sinks._errors import SinkError
from elspeth.sinks._formats import WRITERS


@dataclass(frozen=True)
class _Released:
    """Frames that passed the release check: their data, level and the checks' audit ids."""

    datas: tuple[pd.DataFrame, ...]
    level: SecurityLevel
    audit_ids: tuple[int, ...]


class Sink:
    """A configured sink. Trusted code: it runs in the orchestrator, never in a worker.

    Before anything is written, every frame passes :meth:`SecureDataFrame.verify_for` against
    the sink's clearance (clearance, then seal, with the seal authority). The output is written
    at the join of the frames' levels and marked with it: as a file, privately (0600) and
    atomically; or, for a member of a larger output such as a bundle, into memory. Both go
    through the same check and the same writer, and there is no other way to the writers.
    """

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.format, self.suffix, self._writer = WRITERS[type(config)]

    @property
    def clearance(self) -> SecurityLevel:
        return self.config.clearance

    def write(self, frame: SecureDataFrame, destination: Path | str) -> WrittenArtifact:
        """Write one frame to ``destination``."""
        return self.write_chunks([frame], destination)

    def write_chunks(
        self, frames: Sequence[SecureDataFrame], destination: Path | str
    ) -> WrittenArtifact:
        """Write several frames with the same columns, in order, as one file.

        Raises :class:`~elspeth.security.ClearanceError` or :class:`~elspeth.security.SealError`
        (nothing created) if a frame may not be released to this sink, and :class:`SinkError`
        (nothing left behind) if writing fails.
        """
        destination = Path(destination)
        _require_frames(frames, destination)
        if destination.is_dir():
            raise SinkError(destination, "is a directory; give a file path")
        released = self._release(frames)
        return write_artifact(
            destination,
            lambda handle: self._writer(
                released.datas, handle, released.level, self.config, destination
            ),
            level=released.level,
            format=self.format,
            seal_audit_ids=released.audit_ids,
        )

    def write_member(self, frames: Sequence[SecureDataFrame], name: str) -> WrittenMember:
        """As :meth:`write_chunks`, but into memory: the bytes of the file ``name`` of a larger
        output (a bundle's Parquet member), byte for byte what :meth:`write_chunks` would write.

        Raises :class:`~elspeth.security.ClearanceError` or :class:`~elspeth.security.SealError`
        before anything is written if a frame may not be released to this sink, and
        :class:`SinkError` if writing fails.
        """
        _require_frames(frames, Path(name))
        released = self._release(frames)
        buffer = io.BytesIO()
        try:
            rows = self._writer(released.datas, buffer, released.level, self.config, Path(name))
        except ElspethError:
            raise
        except WRITE_FAILURES as error:
            raise write_failure(name, error, "nothing was kept") from None
        return WrittenMember(
            name=name,
            content=buffer.getvalue(),
            level=released.level,
            rows=rows,
            format=self.format,
            seal_audit_ids=released.audit_ids,
        )

    def _release(self, frames: Sequence[SecureDataFrame]) -> _Released:
        """The release check: every frame's clearance, then its seal; raises before anything
        is written."""
        audit_ids = tuple(frame.verify_for(self.clearance) for frame in frames)
        return _Released(
            datas=tuple(frame.data for frame in frames),
            level=join_all(frame.security_level for frame in frames),
            audit_ids=audit_ids,
        )


def _require_frames(frames: Sequence[SecureDataFrame], destination: Path) -> None:
    if not frames:
        raise SinkError(destination, "no frames to write")


def open_sink(config: SinkConfig) -> Sink:
    """The sink for ``config``."""
    return Sink(config)
