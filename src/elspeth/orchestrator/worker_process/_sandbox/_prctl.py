"""Process flags set through ``prctl``: not dumpable, and no new privileges."""

from __future__ import annotations

from typing import Final

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError
from elspeth.orchestrator.worker_process._sandbox._libc import prctl

PR_GET_DUMPABLE: Final = 3
PR_SET_DUMPABLE: Final = 4
PR_SET_NO_NEW_PRIVS: Final = 38
PR_GET_NO_NEW_PRIVS: Final = 39


def is_dumpable() -> bool:
    """Whether the process may be core-dumped or have its ``/proc`` files opened by its uid."""
    return prctl(PR_GET_DUMPABLE) != 0


def has_no_new_privs() -> bool:
    """Whether ``execve`` can no longer grant privileges (setuid bits, file capabilities)."""
    return prctl(PR_GET_NO_NEW_PRIVS) == 1


def set_not_dumpable() -> None:
    """Make the process not dumpable, so other processes of its uid cannot read its memory.

    A side effect worth knowing: ``/proc/self/*`` becomes owned by root, so a non-root worker can
    no longer read its own ``/proc/self/environ`` afterwards; read it before hardening.
    """
    prctl(PR_SET_DUMPABLE, 0)
    if is_dumpable():
        raise SandboxError("PR_SET_DUMPABLE 0 did not take effect: the process is still dumpable")


def set_no_new_privs() -> None:
    """Set ``NO_NEW_PRIVS`` (irreversible); Landlock and seccomp both require it."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if not has_no_new_privs():
        raise SandboxError("PR_SET_NO_NEW_PRIVS did not take effect")
