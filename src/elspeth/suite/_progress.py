"""Progress per experiment: a live bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

log = logging.getLogger("elspeth.progress")


class Task(Protocol):
    def advance(self, count: int, *, cost: Decimal = ..., error: bool = ...) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def start(self, name: str, total: int) -> Task: ...


class _Counts:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.errors = 0
        self.cost = Decimal(0)
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def add(self, count: int, cost: Decimal, error: bool) -> None:
        with self.lock:
            self.done += count
            self.cost += cost
            self.errors += int(error)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


class _BarTask:
    def __init__(self, bars: RichProgress, task: TaskID, counts: _Counts) -> None:
        self._bars = bars
        self._task = task
        self._counts = counts

    def advance(self, count: int, *, cost: Decimal = Decimal(0), error: bool = False) -> None:
        self._counts.add(count, cost, error)
        self._bars.update(
            self._task,
            advance=count,
            errors=self._counts.errors,
            cost=f"{self._counts.cost:.4f}",
            rate=f"{self._counts.rate():.1f}/s",
        )

    def close(self) -> None:
        self._bars.stop_task(self._task)


class TerminalProgress:
    """Live bars: answers done, answers/s, ETA, errors and cost so far."""

    def __init__(self, console: Console) -> None:
        self._bars = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("errors {task.fields[errors]}  cost {task.fields[cost]}"),
            console=console,
            transient=False,
        )

    def __enter__(self) -> TerminalProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def start(self, name: str, total: int) -> Task:
        counts = _Counts(total)
        task = self._bars.add_task(name, total=total, errors=0, cost="0", rate="")
        return _BarTask(self._bars, task, counts)


class _LogTask:
    def __init__(self, name: str, counts: _Counts, every: float) -> None:
        self._name = name
        self._counts = counts
        self._every = every
        self._last = 0.0

    def advance(self, count: int, *, cost: Decimal = Decimal(0), error: bool = False) -> None:
        self._counts.add(count, cost, error)
        now = time.monotonic()
        if now - self._last >= self._every or self._counts.done >= self._counts.total:
            self._last = now
            self._line()

    def _line(self) -> None:
        counts = self._counts
        rate = counts.rate()
        left = f"{(counts.total - counts.done) / rate:.0f}s" if rate > 0 else "unknown"
        log.info(
            "%s: %d/%d answers, %.1f/s, eta %s, errors %d, cost %s",
            self._name,
            counts.done,
            counts.total,
            rate,
            left,
            counts.errors,
            f"{counts.cost:.4f}",
        )

    def close(self) -> None:
        self._line()


class LogProgress:
    """Plain log lines at most every ``every`` seconds, for pipes, files and containers."""

    def __init__(self, every: float = 5.0) -> None:
        self._every = every

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self, name: str, total: int) -> Task:
        return _LogTask(name, _Counts(total), self._every)
