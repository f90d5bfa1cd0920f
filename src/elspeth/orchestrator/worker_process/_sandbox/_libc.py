"""Thin ctypes access to libc's ``syscall`` and ``prctl``, with errors that name the call."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import TYPE_CHECKING, TypeAlias

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    return libc


def errno_name(number: int) -> str:
    """``EPERM`` for 1, and so on; the number itself when the name is unknown."""
    return errno.errorcode.get(number, str(number))


if TYPE_CHECKING:
    SyscallArgument: TypeAlias = int | ctypes._SimpleCData[int] | ctypes._CArgObject | None


def raw_syscall(number: int, *args: SyscallArgument) -> tuple[int, int]:
    """Call ``syscall(number, *args)``; return ``(result, errno)`` without raising.

    Plain integers travel as ``long``: ``syscall`` is variadic and reads every argument as a
    full register, so a C ``int`` could leave its upper half undefined.
    """
    converted = [ctypes.c_long(arg) if isinstance(arg, int) else arg for arg in args]
    ctypes.set_errno(0)
    result = int(_libc().syscall(ctypes.c_long(number), *converted))
    return result, ctypes.get_errno()


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Call ``prctl``; raise :class:`SandboxError` naming the option when it fails."""
    ctypes.set_errno(0)
    result = int(_libc().prctl(option, arg2, arg3, arg4, arg5))
    if result < 0:
        error = ctypes.get_errno()
        raise SandboxError(f"prctl({option}) failed: {errno_name(error)} ({os.strerror(error)})")
    return result
