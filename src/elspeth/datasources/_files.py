"""Opening a datasource file, with every operating-system failure turned into a clear error."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from elspeth.datasources._errors import (
    DatasourceAccessError,
    DatasourceFormatError,
    DatasourceNotFoundError,
)


def check_source_file(path: Path, source: str, setting: str = "path") -> None:
    """Refuse a missing, unreadable, non-regular or empty file without opening or reading it
    (opening a FIFO would block): what settings validation checks before anything is read."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DatasourceNotFoundError(source, f"no such file; check {setting!r}") from None
    except PermissionError:
        raise DatasourceAccessError(
            source, f"permission denied: user id {os.geteuid()} may not reach this file"
        ) from None
    except OSError as error:
        raise DatasourceAccessError(source, f"cannot be examined: {error.strerror}") from None
    if stat.S_ISDIR(status.st_mode):
        raise DatasourceAccessError(source, "is a directory, not a file")
    if not stat.S_ISREG(status.st_mode):
        raise DatasourceAccessError(source, "is not a regular file")
    if not os.access(path, os.R_OK):
        raise DatasourceAccessError(
            source, f"permission denied: user id {os.geteuid()} may not read this file"
        )
    if status.st_size == 0:
        raise DatasourceFormatError(source, "is empty (0 bytes)")


def open_source_file(path: Path, source: str) -> BinaryIO:
    """Open ``path`` for binary reading; refuse missing, unreadable, non-regular or empty files."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the caller owns and closes it
    except FileNotFoundError:
        raise DatasourceNotFoundError(source, "no such file; check 'path'") from None
    except IsADirectoryError:
        raise DatasourceAccessError(source, "is a directory, not a file") from None
    except PermissionError:
        raise DatasourceAccessError(
            source, f"permission denied: user id {os.geteuid()} may not read this file"
        ) from None
    except OSError as error:
        raise DatasourceAccessError(source, f"cannot be opened: {error.strerror}") from None
    try:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise DatasourceAccessError(source, "is not a regular file")
        if status.st_size == 0:
            raise DatasourceFormatError(source, "is empty (0 bytes)")
    except BaseException:
        handle.close()
        raise
    return handle
