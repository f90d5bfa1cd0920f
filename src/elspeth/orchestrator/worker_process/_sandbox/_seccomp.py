"""A seccomp filter through libseccomp2: allow by default, refuse the escapes listed here."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import functools
from types import MappingProxyType
from typing import Final, NamedTuple

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError
from elspeth.orchestrator.worker_process._sandbox._libc import errno_name, prctl
from elspeth.orchestrator.worker_process._sandbox._prctl import PR_SET_DUMPABLE, set_no_new_privs

_LIBRARY: Final = "libseccomp.so.2"
_ACT_ALLOW: Final = 0x7FFF0000
_ACT_KILL_PROCESS: Final = 0x80000000
_ACT_ERRNO: Final = 0x00050000
_ATTR_ACT_BADARCH: Final = 2
_ATTR_CTL_TSYNC: Final = 4
_CMP_NE: Final = 1
_CMP_MASKED_EQ: Final = 7
_PR_GET_SECCOMP: Final = 21
_LOW_32_BITS: Final = 0xFFFFFFFF
_TIOCSTI: Final = 0x5412

#: ``CLONE_NEW*`` flags that ``clone`` accepts (``CLONE_NEWTIME`` overlaps the exit-signal
#: byte of ``clone`` and is reachable only through ``clone3`` and ``unshare``, both refused).
CLONE_NAMESPACE_FLAGS: Final = MappingProxyType(
    {
        "CLONE_NEWNS": 0x00020000,
        "CLONE_NEWCGROUP": 0x02000000,
        "CLONE_NEWUTS": 0x04000000,
        "CLONE_NEWIPC": 0x08000000,
        "CLONE_NEWUSER": 0x10000000,
        "CLONE_NEWPID": 0x20000000,
        "CLONE_NEWNET": 0x40000000,
    }
)


class Condition(NamedTuple):
    """``(arg[argument] & mask) == value``, or ``arg[argument] != value`` when ``differs``."""

    argument: int
    mask: int
    value: int
    differs: bool = False


class Refusal(NamedTuple):
    syscall: str
    errno: int
    conditions: tuple[Condition, ...]
    reason: str


def _unconditional(names: tuple[str, ...], reason: str) -> tuple[Refusal, ...]:
    return tuple(Refusal(name, errno.EPERM, (), reason) for name in names)


#: The policy, one row per refused call (all conditions of a row must hold).
REFUSALS: Final[tuple[Refusal, ...]] = (
    *_unconditional(("socket",), "every address family: no network, no daemon socket"),
    *_unconditional(
        ("io_uring_setup", "io_uring_enter", "io_uring_register"),
        "io_uring performs I/O (sockets included) that seccomp cannot see",
    ),
    *_unconditional(("unshare", "setns"), "new or foreign namespaces undo every other lock"),
    *(
        Refusal("clone", errno.EPERM, (Condition(0, flag, flag),), f"clone with {name}")
        for name, flag in CLONE_NAMESPACE_FLAGS.items()
    ),
    Refusal(
        "clone3",
        errno.ENOSYS,
        (),
        "its flags sit in memory seccomp cannot read; ENOSYS makes libc fall back to clone",
    ),
    *_unconditional(
        ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd"),
        "no reading or steering another process",
    ),
    *_unconditional(
        ("setsid", "setpgid"), "every descendant stays in the process group the reaper kills"
    ),
    Refusal(
        "prctl",
        errno.EPERM,
        (Condition(0, _LOW_32_BITS, PR_SET_DUMPABLE), Condition(1, 0, 0, differs=True)),
        "dumpability stays off",
    ),
    Refusal(
        "ioctl",
        errno.EPERM,
        (Condition(1, _LOW_32_BITS, _TIOCSTI),),
        "TIOCSTI would type into a terminal",
    ),
    *_unconditional(("keyctl", "add_key", "request_key"), "kernel keyrings hold credentials"),
    *_unconditional(
        ("bpf", "perf_event_open", "userfaultfd"),
        "large kernel attack surface and side channels no plugin needs",
    ),
    *_unconditional(
        (
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ),
        "no changes to the filesystem view",
    ),
)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@dataclasses.dataclass(frozen=True)
class SeccompStatus:
    """What the seccomp filter did. ``applied`` is False with a ``reason`` when it did nothing."""

    applied: bool
    reason: str
    libseccomp_version: str | None = None
    refused: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    library = ctypes.CDLL(_LIBRARY)
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = [ctypes.c_uint32]
    library.seccomp_release.restype = None
    library.seccomp_release.argtypes = [ctypes.c_void_p]
    library.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    library.seccomp_load.argtypes = [ctypes.c_void_p]
    library.seccomp_version.restype = ctypes.POINTER(_Version)
    return library


def _describe(refusal: Refusal) -> str:
    answer = "" if refusal.errno == errno.EPERM else f"->{errno_name(refusal.errno)}"
    if not refusal.conditions:
        return refusal.syscall + answer
    parts = []
    for condition in refusal.conditions:
        if condition.differs:
            parts.append(f"arg{condition.argument}!={condition.value:#x}")
        elif condition.mask == condition.value:
            parts.append(f"arg{condition.argument}&{condition.mask:#x}")
        else:
            parts.append(f"arg{condition.argument}=={condition.value:#x}")
    return f"{refusal.syscall}({','.join(parts)}){answer}"


def load_library() -> tuple[ctypes.CDLL | None, str]:
    """libseccomp and its version, or ``None`` and why it is unavailable."""
    try:
        library = _libseccomp()
    except OSError as error:
        return None, f"{_LIBRARY} cannot be loaded: {error}"
    version = library.seccomp_version().contents
    return library, f"{version.major}.{version.minor}.{version.micro}"


def apply_seccomp() -> SeccompStatus:
    """Load the filter of :data:`REFUSALS` (irreversible, inherited by every child and thread).

    Non-native syscall ABIs (32-bit ``int 0x80`` on x86_64) kill the process: a filter for one
    architecture would otherwise be bypassed through another. Returns an unapplied status with
    the reason when libseccomp or kernel seccomp is missing; raises :class:`SandboxError` when
    building or loading the filter fails.
    """
    library, version = load_library()
    if library is None:
        return SeccompStatus(applied=False, reason=version)
    try:
        prctl(_PR_GET_SECCOMP)
    except SandboxError:
        return SeccompStatus(applied=False, reason="the kernel has no seccomp (PR_GET_SECCOMP)")
    set_no_new_privs()
    context = library.seccomp_init(_ACT_ALLOW)
    if not context:
        raise SandboxError("seccomp_init failed")
    try:
        for attribute, value in ((_ATTR_ACT_BADARCH, _ACT_KILL_PROCESS), (_ATTR_CTL_TSYNC, 1)):
            _check(library.seccomp_attr_set(context, attribute, value), f"attribute {attribute}")
        for refusal in REFUSALS:
            _add_rule(library, context, refusal)
        _check(library.seccomp_load(context), "seccomp_load")
    finally:
        library.seccomp_release(context)
    return SeccompStatus(
        applied=True,
        reason=f"seccomp filter loaded with libseccomp {version}",
        libseccomp_version=version,
        refused=tuple(_describe(refusal) for refusal in REFUSALS),
    )


def _add_rule(library: ctypes.CDLL, context: int, refusal: Refusal) -> None:
    number = library.seccomp_syscall_resolve_name(refusal.syscall.encode())
    if number == -1:  # __NR_SCMP_ERROR: libseccomp does not know the name at all
        raise SandboxError(f"libseccomp does not know the syscall {refusal.syscall!r}")
    comparisons = (_ArgCmp * max(1, len(refusal.conditions)))()
    for slot, condition in zip(comparisons, refusal.conditions, strict=False):
        slot.arg = condition.argument
        if condition.differs:
            slot.op, slot.datum_a, slot.datum_b = _CMP_NE, condition.value, 0
        else:
            slot.op, slot.datum_a, slot.datum_b = _CMP_MASKED_EQ, condition.mask, condition.value
    action = _ACT_ERRNO | (refusal.errno & 0xFFFF)
    result = library.seccomp_rule_add_array(
        context, action, number, len(refusal.conditions), comparisons
    )
    _check(result, f"rule for {_describe(refusal)}")


def _check(result: int, what: str) -> None:
    if result < 0:
        raise SandboxError(f"seccomp {what} failed: {errno_name(-result)}")
