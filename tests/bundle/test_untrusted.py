"""The verifier treats a bundle as hostile bytes: it never extracts, refuses what a bundle never
holds, stays within its limits, and fails only with BundleVerificationError (fuzzed)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.bundle import (
    BundleFileError,
    BundleLimits,
    BundleVerificationError,
    verify_bundle,
)
from tests.bundle.conftest import SharedBundles
from tests.bundle.helpers import entry, hostile, members


def problems_in(tmp_path: Path, content: bytes, limits: BundleLimits | None = None) -> str:
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(content)
    with pytest.raises(BundleVerificationError) as raised:
        verify_bundle(path, limits=limits or BundleLimits())
    return str(raised.value)


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (entry("/etc/passwd"), "/etc/passwd: refused: an absolute path"),
        (entry("../escape.txt"), "../escape.txt: refused: a path climbing out with '..'"),
        (entry("a/../../b"), "a/../../b: refused: a path climbing out with '..'"),
        (entry("./settings.json"), "./settings.json: refused: not a plain relative path"),
        (entry("bad\x1bname"), "'bad\\x1bname': refused: not a plain relative path"),
        (entry("link", kind=tarfile.SYMTYPE), "link: refused: a symbolic link, not a regular"),
        (entry("hard", kind=tarfile.LNKTYPE), "hard: refused: a hard link, not a regular file"),
        (entry("dir", kind=tarfile.DIRTYPE), "dir: refused: a directory, not a regular file"),
        (entry("tty", kind=tarfile.CHRTYPE), "tty: refused: a character device, not a regular"),
        (entry("disk", kind=tarfile.BLKTYPE), "disk: refused: a block device, not a regular"),
        (entry("pipe", kind=tarfile.FIFOTYPE), "pipe: refused: a FIFO, not a regular file"),
    ],
)
def test_members_a_bundle_never_holds_are_refused_by_name(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], message: str
) -> None:
    text = problems_in(tmp_path, hostile(member, entry("summary.json")))

    assert message in text
    assert "MANIFEST.json: missing" in text
    assert "summary.json" not in text.split("MANIFEST.json: missing")[0]


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    text = problems_in(tmp_path, hostile(entry("a.json", b"1"), entry("a.json", b"2")))

    assert "a.json: appears more than once in the archive" in text


@pytest.mark.parametrize(
    ("content", "limits", "message"),
    [
        (
            hostile(entry("big", b"x" * 100)),
            BundleLimits(member_bytes=10),
            "a member may have 0 to 10",
        ),
        (
            hostile(*(entry(f"f{i}") for i in range(5))),
            BundleLimits(members=3),
            "the archive has more than 3 members",
        ),
        (
            hostile(entry("big", b"compressible" * 5_000)),
            BundleLimits(total_bytes=20_000),
            "more than 20000 bytes uncompressed",
        ),
    ],
)
def test_limits_stop_reading(
    tmp_path: Path, content: bytes, limits: BundleLimits, message: str
) -> None:
    assert message in problems_in(tmp_path, content, limits)


def test_a_compressed_file_larger_than_any_bundle_is_refused_unread(tmp_path: Path) -> None:
    text = problems_in(tmp_path, os.urandom(5000), BundleLimits(total_bytes=4096))

    assert "the file is 5000 bytes, more than a bundle may have" in text


def test_a_decompression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    bomb = hostile(entry("zeros", bytes(2_000_000)))
    assert len(bomb) < 10_000

    text = problems_in(tmp_path, bomb, BundleLimits(total_bytes=100_000, member_bytes=1 << 30))

    assert "more than 100000 bytes uncompressed" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"plain text, not a bundle", "not a complete, valid gzip file"),
        (gzip.compress(b"x" * 2000), "not a valid tar archive"),
        (hostile(entry("a.json"))[:-12], "not a complete, valid gzip file"),
    ],
)
def test_what_is_not_a_tar_gz_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    assert message in problems_in(tmp_path, content)


def test_data_after_the_end_of_the_archive_is_refused(tmp_path: Path) -> None:
    text = problems_in(tmp_path, hostile(entry("a.json"), tail=b"hidden member"))

    assert "bytes of unreadable data after its last readable member" in text


def test_a_member_behind_a_broken_header_cannot_hide(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in ("a.json", "hidden.json"):
            info, content = entry(name, b"{}")
            archive.addfile(info, io.BytesIO(content))
    data = bytearray(raw.getvalue())
    second_header = 1024  # the first member: one header block and one data block
    data[second_header + 148 : second_header + 156] = b"0000000\0"  # a wrong checksum

    text = problems_in(tmp_path, gzip.compress(bytes(data)))

    assert "bytes of unreadable data after its last readable member" in text


def test_headers_that_make_tarfile_buffer_or_loop_are_refused(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(
        fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}
    ) as archive:
        info, content = entry("a.json")
        archive.addfile(info, io.BytesIO(content))
    huge = tarfile.TarInfo("a.json")
    huge.pax_headers = {"comment": "x" * 100_000}

    assert "a global extended header, which a bundle never does" in problems_in(
        tmp_path, gzip.compress(raw.getvalue())
    )
    assert "an extended header of" in problems_in(tmp_path, hostile((huge, b"")))


def test_a_path_that_is_not_a_readable_file_is_not_a_verification_failure(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    for path, message in [
        (tmp_path / "absent.tar.gz", r"cannot be opened \(No such file or directory\)"),
        (tmp_path, "is not a regular file"),
        (fifo, "is not a regular file"),
    ]:
        with pytest.raises(BundleFileError, match=message):
            verify_bundle(path)


# --- fuzzing ---------------------------------------------------------------------------------


def verify_only_fails_cleanly(
    path: Path, content: bytes, original: Path | None = None, **keys: Path
) -> None:
    """Hostile bytes either fail with a BundleVerificationError that names every problem, one
    non-empty line each, or (only for a mutation of ``original`` in metadata no manifest covers,
    such as a member's mtime or the gzip header) verify as exactly ``original``: the same
    verdict and the same members, byte for byte. Random bytes never verify."""
    path.write_bytes(content)
    refused: BundleVerificationError | None = None
    try:
        verified = verify_bundle(path, **keys)  # type: ignore[arg-type]
    except BundleVerificationError as error:
        refused = error
    if refused is not None:
        assert refused.problems, "refused without naming a problem"
        text, count = str(refused), len(refused.problems)
        assert f"bundle failed verification ({count} problem{'s' if count > 1 else ''})" in text
        for problem in refused.problems:
            assert isinstance(problem, str), problem
            assert problem.strip(), f"an empty problem in {refused.problems!r}"
            assert "\n" not in problem, f"a problem of several lines: {problem!r}"
            assert f"\n  - {problem}" in text, problem
        return
    assert original is not None, f"{len(content)} random bytes verified as a bundle"
    expected = verify_bundle(original, **keys)  # type: ignore[arg-type]
    assert dataclasses.replace(verified, path=original) == expected
    assert members(path) == members(original), "a bundle whose members changed verified"


# A per-test list replaces the profile's (tests/conftest.py), so too_slow is named again.
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(content=st.binary(max_size=2048))
def test_random_bytes(tmp_path: Path, content: bytes) -> None:
    verify_only_fails_cleanly(tmp_path / "random.tar.gz", content)


@FUZZ
@given(data=st.data())
def test_mutated_compressed_bundles(
    tmp_path: Path, shared: SharedBundles, data: st.DataObject
) -> None:
    content = bytearray(shared.signed.path.read_bytes())
    mutate(content, data)
    verify_only_fails_cleanly(
        tmp_path / "mutated.tar.gz",
        bytes(content),
        shared.signed.path,
        public_key=shared.signer.public,
    )


@FUZZ
@given(data=st.data())
def test_mutated_archives_recompressed(
    tmp_path: Path, shared: SharedBundles, data: st.DataObject
) -> None:
    archive = bytearray(gzip.decompress(shared.signed.path.read_bytes()))
    # Aim most mutations at tar headers, where the parser's decisions are.
    headers = [i for i in range(0, len(archive), 512) if archive[i : i + 1] not in (b"", b"\0")]
    mutate(archive, data, near=headers)
    verify_only_fails_cleanly(
        tmp_path / "recompressed.tar.gz", gzip.compress(bytes(archive)), shared.signed.path
    )


def mutate(content: bytearray, data: st.DataObject, near: list[int] | None = None) -> None:
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        if near and data.draw(st.booleans(), label="in a header"):
            base = data.draw(st.sampled_from(near), label="header")
            position = min(base + data.draw(st.integers(0, 511), label="offset"), len(content))
        else:
            position = data.draw(st.integers(0, len(content)), label="position")
        action = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]), label="action")
        if action == "cut":
            del content[position : position + data.draw(st.integers(1, 600), label="cut")]
        elif action == "insert":
            content[position:position] = data.draw(st.binary(min_size=1, max_size=64))
        elif position < len(content):
            value = data.draw(st.integers(0, 255), label="byte")
            content[position] = content[position] ^ (1 << value % 8) if action == "flip" else value
