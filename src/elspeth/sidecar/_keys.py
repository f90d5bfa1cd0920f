"""Key files and process hardening.

Key files hold exactly 32 raw bytes. They are opened without following symlinks and without
blocking (a FIFO is refused, not waited on) and checked on the open descriptor (no window between
check and read): anything but a regular file is refused, a daemon's key must be owned by the
daemon's user or root, and a mode that lets the wrong users at it is refused with a message
saying which ``chmod`` fixes it. Keys come back as
bytearrays so their owner can zero them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import grp
import logging
import os
import pwd
import resource
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from elspeth.sidecar._errors import KeyFileError
from elspeth.sidecar._protocol import KEY_SIZE

_log = logging.getLogger("elspeth.sidecar")

_PR_SET_DUMPABLE: Final = 4


@dataclass(frozen=True, slots=True)
class KeyFilePolicy:
    """Which mode bits a key file may not have, and the mode a new one gets."""

    forbidden_bits: int
    create_mode: int
    fix_mode: str
    description: str


SESSION_KEY_POLICY: Final = KeyFilePolicy(
    forbidden_bits=stat.S_IWGRP | stat.S_IWOTH | stat.S_IROTH | stat.S_IXOTH,
    create_mode=0o640,
    fix_mode="0640",
    description="session key",
)
CHECKPOINT_KEY_POLICY: Final = KeyFilePolicy(
    forbidden_bits=stat.S_IRWXG | stat.S_IRWXO,
    create_mode=0o600,
    fix_mode="0600",
    description="checkpoint key",
)


_FILE_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symlink"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: ``"a FIFO (named pipe)"``, ``"a directory"``..."""
    for test, kind in _FILE_KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def _user_name(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def check_key_file_status(
    path: Path, info: os.stat_result, policy: KeyFilePolicy, owners: frozenset[int] | None
) -> None:
    """Refuse a key file that is not a regular file, has the wrong owner, or a loose mode.

    ``info`` is ``fstat`` of the opened descriptor. ``owners`` are the uids allowed to own the
    file (the daemon's own uid and root); ``None`` skips the owner check (the client, which
    reads a key the daemon's user owns).
    """
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(
            f"{policy.description} file {path} is {file_kind(info.st_mode)}, not a regular "
            f"file; replace it with a regular file of exactly {KEY_SIZE} raw bytes"
        )
    if owners is not None and info.st_uid not in owners:
        allowed = " or ".join(_user_name(uid) for uid in sorted(owners, reverse=True))
        owner = str(max(owners))
        with contextlib.suppress(KeyError):
            owner = pwd.getpwuid(max(owners)).pw_name
        raise KeyFileError(
            f"{policy.description} file {path} is owned by {_user_name(info.st_uid)}; it must "
            f"be owned by the daemon's user or root ({allowed}), since its owner can change "
            f"its mode and replace the key; fix with: chown {owner} {path}"
        )
    if info.st_mode & policy.forbidden_bits:
        raise KeyFileError(
            f"{policy.description} file {path} has mode {stat.S_IMODE(info.st_mode):04o}, "
            f"which lets the wrong users read or change it; fix with: "
            f"chmod {policy.fix_mode} {path}"
        )


def daemon_key_owners() -> frozenset[int]:
    """Who may own the daemon's key files: the daemon's own (effective) user, and root."""
    return frozenset({os.geteuid(), 0})


def _open_key_file(path: Path, policy: KeyFilePolicy) -> int:
    # O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; the fstat check
    # below refuses it. O_NOFOLLOW: a symlink at the path fails with ELOOP.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise KeyFileError(f"{policy.description} file {path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyFileError(
                f"{policy.description} file {path} is a symlink; key files are never followed "
                f"through symlinks: put the regular file itself at {path}"
            ) from None
        kind = ""
        with contextlib.suppress(OSError):
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):
                kind = f" it is {file_kind(mode)};"
        raise KeyFileError(
            f"{policy.description} file {path} cannot be opened ({exc.strerror});{kind} it must "
            "be a regular file (not a symlink) readable by this user"
        ) from None


def read_key_file(
    path: Path, policy: KeyFilePolicy, *, owners: frozenset[int] | None = None
) -> bytearray:
    """Read a 32-byte key, refusing wrong sizes, non-regular files, owners and loose modes.

    The file is opened without following symlinks and without blocking (a FIFO at the path
    is refused, not waited on), and every check is made on the opened descriptor.
    """
    fd = _open_key_file(path, policy)
    try:
        check_key_file_status(path, os.fstat(fd), policy, owners)
        key = bytearray(KEY_SIZE + 1)
        view = memoryview(key)
        filled = 0
        while filled < len(key):
            count = os.readv(fd, [view[filled:]])
            if count == 0:
                break
            filled += count
        exact = bytearray(KEY_SIZE)
        if filled == KEY_SIZE:
            exact[:] = view[:KEY_SIZE]
        view.release()
        key[:] = bytes(len(key))
        if filled != KEY_SIZE:
            size = f"{filled}" if filled <= KEY_SIZE else "more than 32"
            raise KeyFileError(
                f"{policy.description} file {path} holds {size} bytes; it must hold exactly "
                f"{KEY_SIZE} raw bytes (e.g. head -c 32 /dev/urandom > {path})"
            )
        return exact
    finally:
        os.close(fd)


def create_key_file(path: Path, policy: KeyFilePolicy, *, group: str = "") -> bytearray:
    """Write a fresh random key with the policy's mode; fails if the file appeared meanwhile."""
    key = bytearray(secrets.token_bytes(KEY_SIZE))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, policy.create_mode)
    except OSError as exc:
        raise KeyFileError(
            f"cannot create {policy.description} file {path}: {exc.strerror}"
        ) from None
    try:
        os.fchmod(fd, policy.create_mode)
        gid = group_id(group)
        if gid is not None:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, gid)
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def load_or_create_key(
    path: Path, policy: KeyFilePolicy, *, group: str = "", owners: frozenset[int] | None = None
) -> bytearray:
    """The key at ``path``; if the file is absent, a new one created there (and said so)."""
    if not os.path.lexists(path):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = create_key_file(path, policy, group=group)
        _log.warning(
            "created a new %s file %s (mode %s)", policy.description, path, policy.fix_mode
        )
        return key
    return read_key_file(path, policy, owners=owners)


def group_id(name: str) -> int | None:
    """The id of group ``name``, or ``None`` for ``""`` or a group this host does not have."""
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


# --- hardening -----------------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def harden_process() -> None:
    """No core files, not dumpable (no ptrace by same-uid processes, no /proc/PID/mem)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        _log.warning("prctl(PR_SET_DUMPABLE, 0) failed: errno %d", ctypes.get_errno())


def lock_in_memory(buffers: tuple[bytearray, ...]) -> bool:
    """Best effort ``mlock`` of key buffers so they never reach swap; ``False`` if refused."""
    libc = _libc()
    libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    locked = True
    for buffer in buffers:
        address = ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
        if libc.mlock(ctypes.c_void_p(address), ctypes.c_size_t(len(buffer))) != 0:
            locked = False
    return locked
