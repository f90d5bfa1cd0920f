"""The daemon's audit log: one JSON line per request, on disk before the reply is sent.

Lines go to the kernel (``write``) before the daemon sends the replies they describe; ``fsync``
runs at most every ``fsync_interval`` seconds (0: after every write), trading the last interval
of records on power loss for throughput. Records carry ids, levels, digests and outcomes, never
keys, MACs, seals or record content.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class AuditLog:
    """Append-only JSON-lines file, private to the daemon's user (0600)."""

    def __init__(self, path: Path, *, fsync_interval: float) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fd = os.open(path, flags, 0o600)
        self.path = path
        self._fsync_interval = fsync_interval
        self._last_fsync = time.monotonic()
        self._dirty = False
        self._encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append ``records`` in one write; fsync if the interval has passed."""
        data = "".join(self._encode(record) + "\n" for record in records).encode("ascii")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._dirty = True
        if time.monotonic() - self._last_fsync >= self._fsync_interval:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_fsync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
