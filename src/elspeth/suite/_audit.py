"""The run's audit log: one JSON line per event, private to the orchestrator's user.

Events carry run, experiment and row ordinals and the daemon's audit ids; never row content,
natural keys, prompts, answers or secrets.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

FLUSH_INTERVAL_SECONDS = 0.25
"""How stale the file may be: a flush per line costs a GIL hand-off on the LLM event loop, so
lines are buffered and a background thread flushes them at this interval (and at close)."""


class AuditLog:
    """Append-only JSONL, flushed every :data:`FLUSH_INTERVAL_SECONDS` and at close.

    A ``kill -9`` loses at most the last interval's lines; the daemon's own audit log and the
    checkpoint remain authoritative for what was sealed and answered.
    """

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._lock = threading.Lock()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(descriptor, 0o600)
        self._file = os.fdopen(descriptor, "a", encoding="utf-8", buffering=1024 * 1024)
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="audit", daemon=True)
        self._flusher.start()

    def _flush_periodically(self) -> None:
        while not self._closed.wait(FLUSH_INTERVAL_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Push buffered lines to the file now (before something copies the log)."""
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {"ts": round(time.time(), 6), "run": self.run_id, "event": event, **fields},
            default=str,
            separators=(",", ":"),
        )
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        self._closed.set()
        self._flusher.join()
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
