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


class AuditLog:
    """Append-only JSONL; every line is flushed so a killed run keeps what it recorded."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._lock = threading.Lock()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(descriptor, 0o600)
        self._file = os.fdopen(descriptor, "a", encoding="utf-8")

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {"ts": round(time.time(), 6), "run": self.run_id, "event": event, **fields},
            default=str,
            separators=(",", ":"),
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
