"""The single-thread check: Landlock restricts only the calling thread, so it must be alone."""

from __future__ import annotations

import os

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError

_TASK_DIR = "/proc/self/task"


def thread_names() -> tuple[str, ...]:
    """The kernel's name (``comm``) of every thread of this process, main thread included."""
    names = []
    for tid in sorted(os.listdir(_TASK_DIR), key=int):
        try:
            with open(f"{_TASK_DIR}/{tid}/comm", encoding="utf-8", errors="replace") as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:  # the thread ended while we listed
            continue
    return tuple(names)


def assert_single_threaded() -> None:
    """Raise :class:`SandboxError` unless this process has exactly one thread.

    Native threads count too (a BLAS pool, jemalloc's background thread), which is why this reads
    ``/proc/self/task`` rather than :func:`threading.active_count`.
    """
    names = thread_names()
    if len(names) != 1:
        raise SandboxError(
            f"the worker has {len(names)} threads ({', '.join(names)}) before hardening; "
            "Landlock would leave all but the calling thread unrestricted. Something imported "
            "before the sandbox started a thread (numpy, pyarrow and pandas do): import them "
            "only after harden_worker()"
        )
