"""Closing every inherited descriptor except the ones the worker speaks through."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError

_FD_DIR = "/proc/self/fd"


def open_descriptors() -> tuple[int, ...]:
    """Every descriptor open in this process, ascending."""
    # listdir's own directory descriptor appears in the listing and is closed by the time we
    # look at it, so keep only descriptors that are still open.
    candidates = sorted(int(name) for name in os.listdir(_FD_DIR))
    return tuple(fd for fd in candidates if _is_open(fd))


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def close_inherited_descriptors(keep: Iterable[int] = (0, 1, 2)) -> tuple[int, ...]:
    """Close every descriptor not in ``keep``; return the ones closed (numbers only).

    Reads ``/proc/self/fd`` rather than closing a numeric range, so the result can be reported
    and the outcome verified. Must run while the process is single-threaded.
    """
    kept = frozenset(keep)
    if any(not isinstance(fd, int) or isinstance(fd, bool) or fd < 0 for fd in kept):
        raise SandboxError(f"descriptors to keep must be non-negative integers, got {sorted(kept)}")
    closed = tuple(fd for fd in open_descriptors() if fd not in kept)
    for fd in closed:
        os.close(fd)
    leftover = [fd for fd in open_descriptors() if fd not in kept]
    if leftover:
        raise SandboxError(f"descriptors {leftover} are still open after closing inherited ones")
    return closed
