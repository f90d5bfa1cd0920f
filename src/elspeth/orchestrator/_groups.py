"""Process groups read from ``/proc``: who is in one, killing all of it, removing its scratch dir.

Shared by the orchestrator (standalone mode, where it may signal its own workers) and the reaper
(sudo mode, running as the workers' user). Standard library only.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from elspeth.errors import ElspethError

_POLL_SECONDS: Final = 0.005
_DEAD_STATES: Final = frozenset("ZX")


class GroupKillError(ElspethError):
    """A process group could not be emptied before its deadline."""


@dataclass(frozen=True, slots=True)
class ProcessStat:
    """The fields of ``/proc/<pid>/stat`` the reaper and the runtime need."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    session: int

    @property
    def alive(self) -> bool:
        return self.state not in _DEAD_STATES


def read_stat(pid: int) -> ProcessStat | None:
    """One process's stat line, or ``None`` when it does not exist (any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            line = handle.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: it ends at the last ')'.
    head, _, tail = line.rpartition(")")
    fields = tail.split()
    return ProcessStat(
        pid=pid,
        comm=head.partition("(")[2],
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
    )


def group_members(pgid: int) -> list[ProcessStat]:
    """Every process (zombies included) whose process group is ``pgid``."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_stat(int(name))
            if info is not None and info.pgrp == pgid:
                members.append(info)
    return members


def live_members(pgid: int) -> list[ProcessStat]:
    return [member for member in group_members(pgid) if member.alive]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)


def terminate_group(pgid: int, *, term_grace: float, kill_timeout: float) -> None:
    """SIGTERM the group, then SIGKILL whatever is left; return once no member is alive.

    Members that fork while being killed are in the same group (seccomp refuses ``setsid`` and
    ``setpgid`` to workers), so repeating SIGKILL until the group is empty catches them too.
    """
    if not _signal_group(pgid, signal.SIGTERM):
        return
    if wait_until(lambda: not live_members(pgid), term_grace):
        return

    def killed() -> bool:
        _signal_group(pgid, signal.SIGKILL)
        return not live_members(pgid)

    if not wait_until(killed, kill_timeout):
        left = ", ".join(str(m.pid) for m in live_members(pgid))
        raise GroupKillError(f"process group {pgid} still has live members after SIGKILL: {left}")


def _signal_group(pgid: int, signum: signal.Signals) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        # No member may be signalled by this user: in sudo mode what is left is the root-owned
        # sudo leader (usually a zombie its orchestrator has not reaped yet), which ends on its
        # own once its command is gone. live_members() decides whether the group is empty.
        pass
    return True


def remove_scratch_dir(path: str, *, owner: int) -> bool:
    """Remove a worker's scratch directory if it is a real directory owned by ``owner``.

    Returns whether something was removed. ``shutil.rmtree`` works through directory
    descriptors on Linux, so a symlink planted inside cannot redirect the removal.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner:
        raise GroupKillError(f"scratch directory {path} is not a directory owned by uid {owner}")
    shutil.rmtree(path)
    return True
