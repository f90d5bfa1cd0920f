"""Landlock through raw syscalls: files, TCP and scopes, as far as the kernel's ABI allows."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import Final, NamedTuple

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError
from elspeth.orchestrator.worker_process._sandbox._libc import errno_name, raw_syscall
from elspeth.orchestrator.worker_process._sandbox._prctl import set_no_new_privs
from elspeth.orchestrator.worker_process._sandbox._threads import assert_single_threaded

#: The same numbers on every architecture that uses the generic syscall table and on x86_64.
_SYSCALLS_BY_MACHINE: Final = MappingProxyType(
    {
        "x86_64": (444, 445, 446),
        "aarch64": (444, 445, 446),
    }
)
_CREATE_RULESET_VERSION: Final = 1 << 0
_RULE_PATH_BENEATH: Final = 1

#: The newest ABI whose rights this module knows; a newer kernel is used at this ABI.
NEWEST_KNOWN_ABI: Final = 7


class _Right(NamedTuple):
    bit: int
    since_abi: int
    applies_to_files: bool  # only these may be granted on a non-directory


#: ``LANDLOCK_ACCESS_FS_*``: every right handled (denied unless granted) from its ABI on.
FS_RIGHTS: Final = MappingProxyType(
    {
        "execute": _Right(1 << 0, 1, True),
        "write_file": _Right(1 << 1, 1, True),
        "read_file": _Right(1 << 2, 1, True),
        "read_dir": _Right(1 << 3, 1, False),
        "remove_dir": _Right(1 << 4, 1, False),
        "remove_file": _Right(1 << 5, 1, False),
        "make_char": _Right(1 << 6, 1, False),
        "make_dir": _Right(1 << 7, 1, False),
        "make_reg": _Right(1 << 8, 1, False),
        "make_sock": _Right(1 << 9, 1, False),
        "make_fifo": _Right(1 << 10, 1, False),
        "make_block": _Right(1 << 11, 1, False),
        "make_sym": _Right(1 << 12, 1, False),
        "refer": _Right(1 << 13, 2, False),
        "truncate": _Right(1 << 14, 3, True),
        "ioctl_dev": _Right(1 << 15, 5, True),
    }
)
#: ``LANDLOCK_ACCESS_NET_*``: handled with no port rule, so every TCP bind and connect is denied.
NET_RIGHTS: Final = MappingProxyType(
    {"bind_tcp": _Right(1 << 0, 4, False), "connect_tcp": _Right(1 << 1, 4, False)}
)
#: ``LANDLOCK_SCOPE_*``: no abstract Unix socket and no signal may cross out of the domain.
SCOPES: Final = MappingProxyType(
    {
        "abstract_unix_socket": _Right(1 << 0, 6, False),
        "signal": _Right(1 << 1, 6, False),
    }
)
#: ``landlock_restrict_self`` flags: also audit-log denials of programs the plugin executes.
RESTRICT_SELF_FLAGS: Final = MappingProxyType({"log_new_exec_on": _Right(1 << 1, 7, False)})

#: Rights granted per path class; each is intersected with what the ABI handles.
READ_EXEC_ACCESS: Final = frozenset({"execute", "read_file", "read_dir"})
READ_ONLY_ACCESS: Final = frozenset({"read_file", "read_dir"})
READ_WRITE_ACCESS: Final = frozenset(FS_RIGHTS)

#: System paths a Python worker needs, by access class; missing ones are skipped.
SYSTEM_READ_EXEC_PATHS: Final = ("/usr", "/lib", "/lib64", "/bin")
SYSTEM_READ_ONLY_PATHS: Final = (
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/proc",
    "/sys/devices/system/cpu",
    "/dev/urandom",
)
SYSTEM_READ_WRITE_PATHS: Final = ("/dev/null",)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclasses.dataclass(frozen=True)
class LandlockStatus:
    """What Landlock did. ``applied`` is False with a ``reason`` when it did nothing."""

    applied: bool
    reason: str
    abi: int | None = None
    kernel_abi: int | None = None
    restrictions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _names_at(table: MappingProxyType[str, _Right], abi: int) -> tuple[str, ...]:
    return tuple(name for name, right in table.items() if right.since_abi <= abi)


def _mask(table: MappingProxyType[str, _Right], names: Iterable[str]) -> int:
    bits = 0
    for name in names:
        bits |= table[name].bit
    return bits


def _ruleset_size(abi: int) -> int:
    """Pass only the fields the kernel knows: an older kernel refuses a longer struct."""
    if abi >= SCOPES["signal"].since_abi:
        return ctypes.sizeof(_RulesetAttr)
    if abi >= NET_RIGHTS["bind_tcp"].since_abi:
        return _RulesetAttr.scoped.offset
    return _RulesetAttr.handled_access_net.offset


def kernel_abi() -> tuple[int | None, str]:
    """The kernel's Landlock ABI version, or ``None`` and why it is unavailable."""
    numbers = _SYSCALLS_BY_MACHINE.get(os.uname().machine)
    if numbers is None:
        return None, f"Landlock syscall numbers are not known for {os.uname().machine}"
    version, error = raw_syscall(numbers[0], None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    if version >= 1:
        return version, ""
    reasons = {
        errno.ENOSYS: "the kernel has no Landlock (ENOSYS)",
        errno.EOPNOTSUPP: "Landlock is built into the kernel but disabled at boot (EOPNOTSUPP)",
    }
    return None, reasons.get(error, f"Landlock ABI query failed: {errno_name(error)}")


def default_read_exec_paths() -> tuple[str, ...]:
    """The interpreter's prefixes, its absolute ``sys.path`` entries and the system paths."""
    candidates = (
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        *(entry for entry in sys.path if os.path.isabs(entry)),
        *SYSTEM_READ_EXEC_PATHS,
    )
    return _existing_unique(candidates)


def default_read_only_paths() -> tuple[str, ...]:
    return _existing_unique(SYSTEM_READ_ONLY_PATHS)


def default_read_write_paths() -> tuple[str, ...]:
    return _existing_unique(SYSTEM_READ_WRITE_PATHS)


def _existing_unique(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(os.path.realpath(p) for p in paths if os.path.exists(p)))


def apply_landlock(
    read_exec_paths: Sequence[str],
    scratch_dir: str,
    *,
    read_only_paths: Sequence[str] = (),
    read_write_paths: Sequence[str] = (),
) -> LandlockStatus:
    """Restrict this process (irreversibly) to the given paths, with no TCP and scoped IPC.

    ``scratch_dir`` and ``read_write_paths`` get every file right, the others read (and
    execute) only; files (not directories) get only the file rights of their class. Every path
    must exist. Sets ``NO_NEW_PRIVS`` (Landlock requires it) and checks the process is
    single-threaded right before restricting. Returns an unapplied status with the reason
    when the kernel lacks Landlock; raises :class:`SandboxError` on any other failure.
    """
    found, reason = kernel_abi()
    if found is None:
        return LandlockStatus(applied=False, reason=reason)
    abi = min(found, NEWEST_KNOWN_ABI)
    add_rule, restrict_self = _SYSCALLS_BY_MACHINE[os.uname().machine][1:]
    fs_names = _names_at(FS_RIGHTS, abi)
    net_names = _names_at(NET_RIGHTS, abi)
    scope_names = _names_at(SCOPES, abi)
    handled_fs = _mask(FS_RIGHTS, fs_names)
    attr = _RulesetAttr(handled_fs, _mask(NET_RIGHTS, net_names), _mask(SCOPES, scope_names))
    ruleset_fd, error = raw_syscall(
        _SYSCALLS_BY_MACHINE[os.uname().machine][0],
        ctypes.byref(attr),
        ctypes.c_size_t(_ruleset_size(abi)),
        0,
    )
    if ruleset_fd < 0:
        raise SandboxError(f"landlock_create_ruleset failed at ABI {abi}: {errno_name(error)}")
    try:
        rules = (
            [(path, READ_EXEC_ACCESS) for path in read_exec_paths]
            + [(path, READ_ONLY_ACCESS) for path in read_only_paths]
            + [(path, READ_WRITE_ACCESS) for path in (scratch_dir, *read_write_paths)]
        )
        for path, access in rules:
            _add_path_rule(ruleset_fd, add_rule, path, _mask(FS_RIGHTS, access) & handled_fs)
        set_no_new_privs()
        assert_single_threaded()
        flags = _mask(RESTRICT_SELF_FLAGS, _names_at(RESTRICT_SELF_FLAGS, abi))
        result, error = raw_syscall(restrict_self, ruleset_fd, flags)
        if result != 0:
            raise SandboxError(f"landlock_restrict_self failed at ABI {abi}: {errno_name(error)}")
    finally:
        os.close(ruleset_fd)
    restrictions = (
        "filesystem",
        *(f"fs_{name}" for name in fs_names if FS_RIGHTS[name].since_abi > 1),
        *(f"net_{name}" for name in net_names),
        *(f"scope_{name}" for name in scope_names),
    )
    return LandlockStatus(
        applied=True,
        reason=f"Landlock ABI {abi} applied",
        abi=abi,
        kernel_abi=found,
        restrictions=restrictions,
    )


def _add_path_rule(ruleset_fd: int, add_rule: int, path: str, allowed: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as open_error:
        raise SandboxError(
            f"Landlock path {path!r} cannot be opened: {open_error.strerror}"
        ) from None
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            allowed &= _mask(FS_RIGHTS, (n for n, r in FS_RIGHTS.items() if r.applies_to_files))
        rule = _PathBeneathAttr(allowed, fd)
        result, error = raw_syscall(add_rule, ruleset_fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
        if result != 0:
            raise SandboxError(f"landlock_add_rule for {path!r} failed: {errno_name(error)}")
    finally:
        os.close(fd)
