"""Private, atomic output files: 0600 files in 0700 directories, whatever the umask.

A file is written under a temporary name in its final directory, flushed and fsynced, then
renamed over the destination with :func:`os.replace`, and the directory is fsynced. Any failure
removes the temporary file, so a reader sees the old file, the new file, or nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

import blake3

PRIVATE_FILE_MODE: Final = 0o600
PRIVATE_DIRECTORY_MODE: Final = 0o700
TEMPORARY_SUFFIX: Final = ".partial"
_READ_BLOCK: Final = 1 << 20


def make_private_directory(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700; existing ones are left alone."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue
        # mkdir's mode is filtered by the umask; chmod is not.
        os.chmod(directory, PRIVATE_DIRECTORY_MODE)


@contextlib.contextmanager
def atomic_private_file(destination: Path) -> Iterator[BinaryIO]:
    """A binary handle whose content becomes ``destination`` only if the block succeeds."""
    make_private_directory(destination.parent)
    descriptor, temporary = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=TEMPORARY_SUFFIX
    )
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(destination.parent)


def file_digest_hex(path: Path) -> str:
    """BLAKE3-256 of the file's bytes, as hex."""
    hasher = blake3.blake3()
    with open(path, "rb") as handle:
        while block := handle.read(_READ_BLOCK):
            hasher.update(block)
    digest: str = hasher.hexdigest()
    return digest


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
