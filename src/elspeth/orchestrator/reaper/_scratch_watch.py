"""The scratch watcher: how much a worker's scratch directory holds, checked while the worker lives.

``RLIMIT_FSIZE`` bounds each file a worker writes; nothing in the kernel bounds how many it
writes. The watcher (``reaper watch``) runs as the workers' user, so it can read the directory
in sudo mode too, and in a session of its own: outside the worker's process group and Landlock
domain, so a sandboxed plugin cannot signal or trace it. Every :data:`POLL_SECONDS` it adds the
directory up; once it holds more than the limit (or cannot be read), the watcher prints why, kills
the worker's group and exits, whether the worker is in a call or idle in its pool. The
orchestrator waits on the watcher's output as well as on the worker's channel, so a watcher that
ends for any reason ends the worker's call (fail closed). Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
from typing import Final

from elspeth.orchestrator._groups import GroupKillError, terminate_group

POLL_SECONDS: Final = 0.1
"""How often the directory is added up: it may overshoot by what a plugin writes in that time."""

ENTRY_BYTES: Final = 4096
"""Every file, directory and link counts as at least one block, so the number of (empty) files
is bounded too."""

EXIT_STOPPED: Final = 0
EXIT_FULL: Final = 4
"""Printed first: the bytes the directory held (counted until they passed the limit)."""
EXIT_UNREADABLE: Final = 5
"""Printed first: why part of the directory could not be read (the plugin hid it)."""

_KILL_TIMEOUT_SECONDS: Final = 10.0
log = logging.getLogger("elspeth.orchestrator")


def scratch_usage(path: str, limit: int) -> int:
    """The bytes the tree at ``path`` holds, counted until they pass ``limit``: per entry the
    larger of its size and its allocated blocks (so neither holes nor compression hide data),
    and at least :data:`ENTRY_BYTES`. Links are not followed; entries removed while counting are
    skipped; any other ``OSError`` (a part that cannot be read) is raised."""
    total = 0
    pending = [path]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                total += max(info.st_size, info.st_blocks * 512, ENTRY_BYTES)
                if total > limit:
                    return total
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return total


def watch(pgid: int, scratch_dir: str, limit: int) -> int:
    """Watch until standard input closes (the orchestrator stopped the worker, or went away)
    or the directory passes ``limit``; returns the exit status."""
    while not _closed(sys.stdin.fileno(), POLL_SECONDS):
        try:
            used = scratch_usage(scratch_dir, limit)
        except OSError as error:
            verdict, status = error.strerror or type(error).__name__, EXIT_UNREADABLE
        else:
            if used <= limit:
                continue
            verdict, status = str(used), EXIT_FULL
        print(verdict, flush=True)
        # A group that will not empty is the orchestrator's to report: it kills the group again
        # when it replaces the worker.
        with contextlib.suppress(GroupKillError):
            terminate_group(pgid, term_grace=0.0, kill_timeout=_KILL_TIMEOUT_SECONDS)
        return status
    return EXIT_STOPPED


def _closed(fd: int, timeout: float) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable) and not os.read(fd, 4096)


class ScratchWatcher:
    """The orchestrator's end of one worker's watcher: the process, its output, how it ended."""

    def __init__(self, command: list[str]) -> None:
        self._popen = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
        )
        assert self._popen.stdout is not None
        self.pid = self._popen.pid
        self.fd = self._popen.stdout.fileno()
        """Readable once the watcher printed its verdict or ended: the worker's call ends too."""
        self.status: int | None = None
        self.output = ""

    def stop(self, timeout: float) -> None:
        """Close the watcher's input (it exits at its next poll, or has already ended) and keep
        its exit status and output. Raises nothing; a watcher that does not end is logged."""
        try:
            output, _ = self._popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("scratch watcher %d did not end within %ss", self.pid, timeout)
            with contextlib.suppress(OSError):
                self._popen.kill()  # refused to us in sudo mode: it is the workers' user's
            return
        self.status = self._popen.returncode
        self.output = output.decode("utf-8", "replace").strip()[:500]
