"""A worker's stderr, captured into a private per-run file marked with the worker's level.

What a plugin writes to stderr (and its exception texts) may hold the data it was given, so it is
data at the worker's level: it never reaches the operational log, which records only the file's
size and path.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import IO, Final

from elspeth.security import SecurityLevel

_READ_BYTES: Final = 64 * 1024
log = logging.getLogger("elspeth.orchestrator")


def private_directory(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700 if missing; refuse one other users can enter."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"worker log directory {path} must be private to uid {os.getuid()}")
    return path


class StderrCapture:
    """Drains one worker's stderr pipe into ``path`` (0600), keeping at most ``cap`` bytes."""

    def __init__(self, stream: IO[bytes], path: Path, level: SecurityLevel, cap: int) -> None:
        self.path = path
        self.level = level
        self.captured = 0
        self.dropped = 0
        self._cap = cap
        self._stream = stream
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o600)
        os.write(
            self._fd,
            f"# elspeth worker stderr; classification: {level.name}; "
            f"handle as {level.name} data\n".encode(),
        )
        self._thread = threading.Thread(target=self._drain, name=f"stderr-{path.name}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        fd = self._stream.fileno()
        while chunk := os.read(fd, _READ_BYTES):
            room = self._cap - self.captured
            kept = chunk[: max(room, 0)]
            if kept:
                os.write(self._fd, kept)
            self.captured += len(kept)
            self.dropped += len(chunk) - len(kept)

    def finish(self, timeout: float) -> None:
        """Wait for end of input (every holder of the pipe gone), close, log size and path."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("worker stderr pipe still open after %.1fs: %s", timeout, self.path)
            return
        if self.dropped:
            os.write(self._fd, f"\n# {self.dropped} more bytes dropped (cap reached)\n".encode())
        os.close(self._fd)
        self._stream.close()
        log.info(
            "worker stderr: %d bytes (%d dropped) in %s, classified %s",
            self.captured,
            self.dropped,
            self.path,
            self.level.name,
        )
