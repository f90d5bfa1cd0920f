"""The reaper: ``sudo -n -u appplugin <venv>/bin/python -I -m elspeth.orchestrator.reaper PGID DIR``

The orchestrator (``appuser``) cannot signal its workers (``appplugin``). This command, allowed by a
narrow sudoers rule, runs as the workers' user and:

1. accepts only a decimal process-group id and an absolute scratch path named ``worker-<token>``;
2. checks that the group's leader (pid == PGID) is its own session and group leader and a child of
   the orchestrator that called the reaper (the reaper's parent is the ``sudo`` that ran it; that
   sudo's parent is the orchestrator), and that the leader is ``sudo`` (or, if sudo executed the
   worker directly, the worker module itself);
3. SIGTERMs the group, SIGKILLs what is left, waits until no member is alive (with a deadline);
4. removes the worker's scratch directory (a real directory owned by this user, never a link).

The orchestrator does not reap its sudo child before the reaper ran, so the leader's pid (and with
it the group id) cannot be reused in between. Exit status: 0 done, 2 refused, 3 group not emptied.

``watch PGID DIR LIMIT`` makes the checks of 1 and 2, then watches the worker's scratch directory
instead (:mod:`._scratch_watch`; the sudoers rule needs no change): exit status 0 when its standard
input closes, 2 refused, 4 when the directory held more than LIMIT bytes and 5 when it could not
be read (the group killed in both cases).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Final

from elspeth.orchestrator._groups import (
    GroupKillError,
    ProcessStat,
    read_stat,
    remove_scratch_dir,
    terminate_group,
)
from elspeth.orchestrator.reaper._scratch_watch import watch

EXIT_DONE: Final = 0
EXIT_REFUSED: Final = 2
EXIT_NOT_EMPTIED: Final = 3

TERM_GRACE_SECONDS: Final = 1.0
KILL_TIMEOUT_SECONDS: Final = 10.0
WORKER_MODULE: Final = "elspeth.orchestrator.worker_process"

_PGID: Final = re.compile(r"[1-9][0-9]{0,9}")
_SCRATCH_NAME: Final = re.compile(r"worker-[0-9a-f]{16,64}")
_LIMIT: Final = re.compile(r"[1-9][0-9]{0,17}")


class ReaperRefusal(Exception):
    """The request does not name a worker group of the calling orchestrator."""


def calling_orchestrator() -> int:
    """The pid of the process that ran ``sudo ... reaper`` (skipping the sudo in between)."""
    parent = read_stat(os.getppid())
    if parent is None:
        raise ReaperRefusal("the reaper's parent is gone")
    return parent.ppid if parent.comm == "sudo" else parent.pid


def check_request(pgid_text: str, scratch_dir: str, orchestrator: int) -> int:
    """Validate the arguments and the group's ancestry; return the process-group id."""
    if not _PGID.fullmatch(pgid_text):
        raise ReaperRefusal(
            f"process-group id must be a positive decimal number, got {pgid_text!r}"
        )
    pgid = int(pgid_text)
    if (
        not os.path.isabs(scratch_dir)
        or os.path.normpath(scratch_dir) != scratch_dir
        or not _SCRATCH_NAME.fullmatch(os.path.basename(scratch_dir))
    ):
        raise ReaperRefusal(f"scratch directory {scratch_dir!r} is not a worker scratch path")
    leader = read_stat(pgid)
    if leader is None:
        raise ReaperRefusal(f"no process {pgid}")
    if not (leader.pgrp == pgid and leader.session == pgid):
        raise ReaperRefusal(f"process {pgid} does not lead its own session and group")
    if leader.ppid != orchestrator:
        raise ReaperRefusal(f"process {pgid} is not a child of the calling orchestrator")
    if not _is_worker_leader(leader):
        raise ReaperRefusal(f"process {pgid} is neither sudo nor an elspeth worker")
    return pgid


def _is_worker_leader(leader: ProcessStat) -> bool:
    if leader.comm == "sudo":
        return True
    try:
        with open(f"/proc/{leader.pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return WORKER_MODULE.encode() in argv


def main(argv: list[str]) -> int:
    if argv[:1] == ["watch"]:
        return _watch_main(argv[1:])
    if len(argv) != 2:
        print("usage: python -I -m elspeth.orchestrator.reaper PGID SCRATCH_DIR", file=sys.stderr)
        return EXIT_REFUSED
    try:
        pgid = check_request(argv[0], argv[1], calling_orchestrator())
    except ReaperRefusal as refusal:
        print(f"elspeth reaper: refused: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        terminate_group(pgid, term_grace=TERM_GRACE_SECONDS, kill_timeout=KILL_TIMEOUT_SECONDS)
        remove_scratch_dir(argv[1], owner=os.getuid())
    except GroupKillError as error:
        print(f"elspeth reaper: {error}", file=sys.stderr)
        return EXIT_NOT_EMPTIED
    return EXIT_DONE


def _watch_main(argv: list[str]) -> int:
    """``watch PGID DIR LIMIT``: the same checks of the group and directory, then watch."""
    if len(argv) != 3 or not _LIMIT.fullmatch(argv[2]):
        print(
            "usage: python -I -m elspeth.orchestrator.reaper watch PGID SCRATCH_DIR LIMIT_BYTES",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    try:
        pgid = check_request(argv[0], argv[1], calling_orchestrator())
    except ReaperRefusal as refusal:
        print(f"elspeth scratch watcher: refused: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    return watch(pgid, argv[1], int(argv[2]))
