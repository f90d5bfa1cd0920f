"""A pool of pre-spawned workers at one level: checkout, return, replace, shut down."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from elspeth.orchestrator._errors import WorkerStartError
from elspeth.orchestrator._runtime._process import WorkerProcess
from elspeth.security import SecurityLevel


class WorkerPool:
    """Up to ``size`` workers that only ever receive data at ``level`` (the plan's level)."""

    def __init__(
        self, level: SecurityLevel, size: int, spawn: Callable[[SecurityLevel], WorkerProcess]
    ) -> None:
        self.level = level
        self.size = size
        self._spawn = spawn
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._closed = False
        self._condition = threading.Condition()

    @property
    def workers(self) -> list[WorkerProcess]:
        with self._condition:
            return [*self._idle, *self._busy]

    def prestart(self) -> None:
        """Spawn and warm workers until the pool is full (a replacement starts this way): calls
        on them are then timed by the call timeout alone."""
        while True:
            with self._condition:
                if self._closed or self._count() >= self.size:
                    return
                self._starting += 1
            worker = self._start_one(warm=True)
            with self._condition:
                self._starting -= 1
                closed = self._closed
                if not closed:
                    self._idle.append(worker)
                    self._condition.notify()
            if closed:
                worker.stop(polite=True)

    def acquire(self, timeout: float) -> WorkerProcess:
        """An idle worker, spawning one if the pool is not full; waits up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not self._idle:
                if self._closed:
                    raise WorkerStartError(f"the {self.level.name} worker pool is closed")
                if self._count() < self.size:
                    self._starting += 1
                    break
                if not self._condition.wait(max(deadline - time.monotonic(), 0)):
                    raise TimeoutError(f"no {self.level.name} worker free within {timeout}s")
            else:
                worker = self._idle.pop()
                self._busy.add(worker)
                return worker
        worker = self._start_one()
        with self._condition:
            self._starting -= 1
            self._busy.add(worker)
        return worker

    def release(self, worker: WorkerProcess) -> None:
        with self._condition:
            self._busy.discard(worker)
            self._idle.append(worker)
            self._condition.notify()

    def replace(self, worker: WorkerProcess) -> None:
        """Kill a worker that failed or misbehaved and start a fresh one in its place."""
        with self._condition:
            self._busy.discard(worker)
            self._condition.notify()
        worker.stop(polite=False)
        self.prestart()

    def close(self) -> None:
        """Stop every worker: politely, then by killing its group."""
        with self._condition:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
            self._condition.notify_all()
        for worker in workers:
            worker.stop(polite=True)

    def _count(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def _start_one(self, *, warm: bool = False) -> WorkerProcess:
        """Spawn (and with ``warm``, warm) one worker for a slot already counted in
        ``_starting``; on failure stop what was spawned and free the slot."""
        worker: WorkerProcess | None = None
        try:
            worker = self._spawn(self.level)
            if warm:
                worker.warm()
        except BaseException:
            if worker is not None:
                worker.stop(polite=False)
            with self._condition:
                self._starting -= 1
                self._condition.notify()
            raise
        return worker
