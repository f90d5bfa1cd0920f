"""Payload bytes in flight from every worker of a run at once, and the limit on them.

The payload cap bounds one payload; without a bound across workers, a pool of N workers could
make the orchestrator hold N full payloads at the same moment. A payload is counted from the
moment its size is known (before any of it is allocated or read) until the reply it carries has
been consumed (turned into a frame, or refused).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class InFlightLimitError(Exception):
    """A payload would take the bytes in flight past the limit; nothing of it was read."""

    def __init__(self, size: int, held: int, limit: int) -> None:
        super().__init__(f"a payload of {size} bytes with {held} bytes already in flight")
        self.size = size
        self.held = held
        self.limit = limit


class InFlightBytes:
    """The bytes in flight across the workers of one runtime, at most ``limit``. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Count ``size`` bytes while the block runs; :class:`InFlightLimitError` when they do
        not fit (then nothing is counted)."""
        with self._lock:
            if self._held + size > self.limit:
                raise InFlightLimitError(size, self._held, self.limit)
            self._held += size
        try:
            yield
        finally:
            with self._lock:
                self._held -= size
