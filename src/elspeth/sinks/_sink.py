"""The sink: re-checks clearance and seal, then writes one private file atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from elspeth.security import SecureDataFrame, SecurityLevel, join_all
from elspeth.sinks._artifact import WrittenArtifact, write_artifact
from elspeth.sinks._config import SinkConfig
from elspeth.sinks._errors import SinkError
from elspeth.sinks._formats import WRITERS


class Sink:
    """A configured sink. Trusted code: it runs in the orchestrator, never in a worker.

    Before anything touches the disk, every frame passes
    :meth:`SecureDataFrame.verify_for` against the sink's clearance (clearance, then seal, with
    the seal authority). The file is written at the join of the frames' levels and marked with
    it, privately (0600) and atomically.
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
        if not frames:
            raise SinkError(destination, "no frames to write")
        if destination.is_dir():
            raise SinkError(destination, "is a directory; give a file path")
        audit_ids = tuple(frame.verify_for(self.clearance) for frame in frames)
        level = join_all(frame.security_level for frame in frames)
        datas = [frame.data for frame in frames]
        return write_artifact(
            destination,
            lambda handle: self._writer(datas, handle, level, self.config, destination),
            level=level,
            format=self.format,
            seal_audit_ids=audit_ids,
        )


def open_sink(config: SinkConfig) -> Sink:
    """The sink for ``config``."""
    return Sink(config)
