"""The bundle's container: a deterministic gzip'd tar, and a reader that trusts none of it.

Writing: members in sorted order, regular files only, mode 0600, uid/gid 0, no user or group
names, one fixed mtime, and a gzip header without a file name; the same input gives the same
bytes.

Reading treats the file as hostile. It never extracts anything: members stream past once and are
hashed (only the manifest and its signature are kept, within their limits). Every decompressed
byte is counted against a limit; header types that make :mod:`tarfile` buffer or loop
(sparse files, global or oversized extended headers) stop the read; links, devices, directories,
absolute or climbing names and duplicates are reported one by one. :mod:`tarfile` ends an
archive quietly at the first unreadable header after the first member, so the reader also
requires every byte after the end it reached to be zero: nothing can hide behind a broken header.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Final, Protocol, cast

from elspeth.bundle._manifest import BundleLimits, member_name_problem, shown

MEMBER_MODE: Final = 0o600
_BLOCK: Final = 1 << 20
_EXTENDED_HEADER_LIMIT: Final = 64 * 1024
_COMPRESSION_LEVEL: Final = 6
_HEADER_OVERHEAD: Final = 1024
_ARCHIVE_OVERHEAD: Final = 2 * tarfile.RECORDSIZE
_EXTENDED_HEADER_TYPES: Final = frozenset(
    {tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)
_REFUSED_HEADER_TYPES: Final = {
    tarfile.GNUTYPE_SPARSE: "a sparse file",
    tarfile.XGLTYPE: "a global extended header",
}
_NOT_REGULAR: Final = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.DIRTYPE: "a directory",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.AREGTYPE: "an old-style file entry",
}


def write_archive(members: Mapping[str, bytes], handle: BinaryIO, mtime: int) -> None:
    """Write ``members`` (name → content) to ``handle`` as a deterministic tar.gz."""
    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=handle, mtime=mtime, compresslevel=_COMPRESSION_LEVEL
        ) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in sorted(members):
            content = members[name]
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = mtime
            info.mode = MEMBER_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            archive.addfile(info, io.BytesIO(content))


def size_problem(members: Mapping[str, bytes], limits: BundleLimits) -> str | None:
    """Why a verifier with ``limits`` would refuse these members, or ``None``."""
    if len(members) > limits.members:
        return f"{len(members)} members, more than the {limits.members} a verifier reads"
    for name, content in members.items():
        if len(content) > limits.member_bytes:
            return (
                f"member {name} is {len(content)} bytes, more than the {limits.member_bytes} "
                "a verifier reads"
            )
    total = sum(len(content) + _HEADER_OVERHEAD for content in members.values())
    if total + _ARCHIVE_OVERHEAD > limits.total_bytes:
        return f"about {total} bytes in all, more than the {limits.total_bytes} a verifier reads"
    return None


@dataclass
class ArchiveContents:
    """What a read found: each accepted regular member's SHA-256 and size, the content of the
    members asked for, and every problem seen. ``unreadable`` is set when reading had to stop,
    and then the rest is incomplete."""

    digests: dict[str, tuple[str, int]] = field(default_factory=dict)
    kept: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unreadable: str | None = None


class _Unreadable(Exception):
    """Reading cannot go on; the message says why."""


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses, as soon as their header is parsed and before tarfile reads what it announces, the
    members tarfile would buffer or loop on.

    The hook is ``_proc_member``: tarfile calls it on every header it parses, follow-up headers
    of an extended header included, in every 3.11 release. ``frombuf`` is not one: since the
    2025 security releases (Debian's 3.11.2-6+deb12u7 among them) tarfile builds headers
    through a private ``_frombuf`` and never calls an override of ``frombuf``."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        refused = _REFUSED_HEADER_TYPES.get(self.type)
        if refused is not None:
            raise _Unreadable(f"the archive holds {refused}, which a bundle never does")
        if self.type in _EXTENDED_HEADER_TYPES and self.size > _EXTENDED_HEADER_LIMIT:
            raise _Unreadable(
                f"the archive has an extended header of {self.size} bytes "
                f"(at most {_EXTENDED_HEADER_LIMIT})"
            )
        member: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]
        return member


class _Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _CountedStream:
    """The decompressed tar stream: fatal beyond ``limit`` bytes; remembers where its last
    non-zero byte ended."""

    def __init__(self, source: _Reader, limit: int) -> None:
        self._source = source
        self._limit = limit
        self.position = 0
        self.nonzero_end = 0

    def read(self, size: int = -1) -> bytes:
        wanted = _BLOCK if size < 0 else min(size, _BLOCK)
        chunk = self._source.read(min(wanted, self._limit + 1 - self.position))
        self.position += len(chunk)
        if self.position > self._limit:
            raise _Unreadable(f"the archive holds more than {self._limit} bytes uncompressed")
        significant = len(chunk.rstrip(b"\0"))
        if significant:
            self.nonzero_end = self.position - len(chunk) + significant
        return chunk


def read_archive(
    source: BinaryIO, limits: BundleLimits, keep: Mapping[str, int]
) -> ArchiveContents:
    """Hash every regular member of the tar.gz in ``source``; keep the content of the members
    named in ``keep`` (name → most bytes kept)."""
    contents = ArchiveContents()
    try:
        with gzip.GzipFile(fileobj=source, mode="rb") as unzipped:
            stream = _CountedStream(unzipped, limits.total_bytes)
            # Stream mode ("r|") only ever reads its file object, which is all a stream can do.
            readable = cast(BinaryIO, stream)
            with tarfile.open(fileobj=readable, mode="r|", tarinfo=_CheckedTarInfo) as archive:
                _read_members(archive, limits, keep, contents)
                end = archive.offset
            while stream.read(_BLOCK):
                pass
            if stream.nonzero_end > end:
                contents.problems.append(
                    f"the archive has {stream.nonzero_end - end} bytes of unreadable data after "
                    "its last readable member"
                )
    except _Unreadable as error:
        contents.unreadable = str(error)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        contents.unreadable = f"not a complete, valid gzip file ({_clip(error)})"
    except tarfile.TarError as error:
        contents.unreadable = f"not a valid tar archive ({_clip(error)})"
    except (OSError, ValueError, OverflowError, RecursionError) as error:
        contents.unreadable = f"cannot be read as a bundle ({_clip(error)})"
    return contents


def _read_members(
    archive: tarfile.TarFile,
    limits: BundleLimits,
    keep: Mapping[str, int],
    contents: ArchiveContents,
) -> None:
    seen: set[str] = set()
    for count, member in enumerate(archive, start=1):
        if count > limits.members:
            raise _Unreadable(f"the archive has more than {limits.members} members")
        name = shown(member.name)
        problem = member_name_problem(member.name)
        if problem is not None:
            contents.problems.append(f"{name}: refused: {problem}")
            continue
        if member.name in seen:
            contents.problems.append(f"{name}: appears more than once in the archive")
            continue
        seen.add(member.name)
        if member.type != tarfile.REGTYPE:
            kind = _NOT_REGULAR.get(member.type, f"of type {member.type!r}")
            contents.problems.append(f"{name}: refused: {kind}, not a regular file")
            continue
        if not 0 <= member.size <= limits.member_bytes:
            raise _Unreadable(
                f"{name} declares {member.size} bytes; a member may have 0 to {limits.member_bytes}"
            )
        kept_limit = keep.get(member.name)
        if kept_limit is not None and member.size > kept_limit:
            contents.problems.append(
                f"{name}: {member.size} bytes, more than the {kept_limit} it may have"
            )
            kept_limit = None
        contents.digests[member.name] = _hash_member(
            archive, member, contents.kept if kept_limit is not None else None
        )


def _hash_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, kept: dict[str, bytes] | None
) -> tuple[str, int]:
    handle = archive.extractfile(member)
    if handle is None:  # tarfile hands out data only for regular files, which this is
        raise _Unreadable(f"{shown(member.name)}: its content cannot be read")
    hasher = hashlib.sha256()
    held = bytearray() if kept is not None else None
    size = 0
    while block := handle.read(_BLOCK):
        hasher.update(block)
        size += len(block)
        if held is not None:
            held += block
    if kept is not None and held is not None:
        kept[member.name] = bytes(held)
    return hasher.hexdigest(), size


def _clip(error: BaseException) -> str:
    text = ascii(str(error) or type(error).__name__)[1:-1]
    return text if len(text) <= 200 else text[:200] + "…"
