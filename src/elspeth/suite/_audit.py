"""The run's audit log: one JSON line per event, private to the orchestrator's user.

Events carry run, experiment and row ordinals and the daemon's audit ids; never row content,
natural keys, prompts, answers or secrets. Each is one of the declared types of
:mod:`elspeth.audit`, and each line carries the hash of the line before it (see
:mod:`elspeth.audit._chain`); the last line's hash goes into the run's manifest.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from elspeth.audit import AuditEvent, ChainHead, head_of, line_hash

FLUSH_INTERVAL_SECONDS = 0.25
"""How stale the file may be: a flush per line costs a GIL hand-off on the LLM event loop, so
lines are buffered and a background thread flushes them at this interval (and at close)."""

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""``json.dumps(..., separators=(",", ":"))`` without building an encoder per line."""


class AuditLog:
    """Append-only JSONL, flushed every :data:`FLUSH_INTERVAL_SECONDS` and at close.

    A ``kill -9`` loses at most the last interval's lines; the daemon's own audit log and the
    checkpoint remain authoritative for what was sealed and answered.
    """

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._run = _ENCODE(run_id)
        self._lock = threading.Lock()
        descriptor = os.open(
            path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        os.fchmod(descriptor, 0o600)
        head = self._continue_chain(descriptor)
        self._lines, self._last_hash = head.lines, head.last_hash
        # Lines are ASCII (JSON with every non-ASCII character escaped): written as the very
        # bytes their hash is taken of.
        self._file = os.fdopen(descriptor, "ab", buffering=1024 * 1024)
        self.failure: OSError | None = None
        """The first I/O error writing the log; lines after it are lost, and the run fails."""
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="audit", daemon=True)
        self._flusher.start()

    def _continue_chain(self, descriptor: int) -> ChainHead:
        """A resumed run appends to its log: the chain goes on from its last line. A line torn
        by a crash is ended, not removed (the log is append-only), so verifying shows it."""
        with open(descriptor, "rb", closefd=False) as existing:
            existing.seek(0)
            data = existing.read()
        if data and not data.endswith(b"\n"):
            os.write(descriptor, b"\n")
        return head_of(data, self.run_id)

    @property
    def head(self) -> ChainHead:
        """The lines written so far and the last one's hash: what the manifest records."""
        with self._lock:
            return ChainHead(self._lines, self._last_hash)

    def _flush_periodically(self) -> None:
        while not self._closed.wait(FLUSH_INTERVAL_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Push buffered lines to the file now (before something copies the log)."""
        with self._lock:
            if not self._file.closed and self.failure is None:
                self._guarded(self._file.flush)

    def _guarded(self, write: Callable[[], object]) -> None:
        """Run a write; the first I/O error stops the log (a full disk must not end the run
        with a traceback from the flusher thread) and is kept for the runner to report."""
        try:
            write()
        except OSError as error:  # a write through a handle names no file: name it
            self.failure = OSError(error.errno, error.strerror, str(self.path))

    def record(self, event: AuditEvent) -> None:
        """Append ``event``, chained to the line before; thread-safe (workers' calls and the
        row stages record from their own threads)."""
        # The line is the envelope then the fields, as one object dumped at once would be:
        # ``{"ts":..,"run":..,"event":..,"prev":..,<fields>}``. A timestamp is a finite float,
        # which JSON writes as its repr; the fields are dumped without their opening brace.
        ts = repr(round(time.time(), 6))
        fields = _ENCODE(event.fields())
        fields = "}" if fields == "{}" else "," + fields[1:]
        with self._lock:
            if self.failure is not None:
                return
            line = (
                f'{{"ts":{ts},"run":{self._run},"event":{_ENCODE(event.NAME)},'
                f'"prev":"{self._last_hash}"{fields}'
            ).encode("ascii")
            self._guarded(lambda: self._file.write(line + b"\n"))
            if self.failure is None:
                self._lines += 1
                self._last_hash = line_hash(line)

    def close(self) -> None:
        """Flush, sync and close; an I/O error is kept in :attr:`failure`, never raised."""
        self._closed.set()
        self._flusher.join()
        with self._lock:
            if self._file.closed:
                return
            if self.failure is None:
                self._guarded(self._file.flush)
            if self.failure is None:
                self._guarded(lambda: os.fsync(self._file.fileno()))
            try:
                self._file.close()
            except OSError as error:  # the buffer could not be written out
                self.failure = self.failure or OSError(error.errno, error.strerror, str(self.path))
