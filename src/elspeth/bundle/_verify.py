"""Verifying a bundle: every member against the manifest, the manifest against its signature,
and the audit log's hash chain (:mod:`elspeth.audit`) against the run the manifest names.

The bundle is untrusted bytes: it is read once, never extracted (see :mod:`._archive`), and every
problem found is collected, so one :class:`BundleVerificationError` says everything that differs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from elspeth.audit import AUDIT_NAME, check_chain
from elspeth.bundle._archive import ArchiveContents, read_archive
from elspeth.bundle._errors import BundleFileError, BundleKeyError, BundleVerificationError
from elspeth.bundle._keys import (
    ed25519_fingerprint,
    hmac_fingerprint,
    load_public_key,
    raw_public_key,
    read_hmac_key,
)
from elspeth.bundle._manifest import (
    DEFAULT_LIMITS,
    ED25519,
    HMAC_SHA256,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleLimits,
    BundleManifest,
    Ed25519Block,
    HmacBlock,
    canonical_json,
    shown,
)
from elspeth.bundle._signing import HmacSigner
from elspeth.security import SecurityLevel, join_all

_SHOWN_HEX = 16
_MAX_SCHEMA_PROBLEMS = 20


@dataclass(frozen=True)
class BundleVerification:
    """A bundle that passed: its level, who signed it and how far that identifies them.

    ``signer_pinned`` is true when the caller supplied the key it was checked with; otherwise the
    signer is identified only by ``signer_fingerprint``, which the caller must compare with the
    publisher's. ``integrity_only`` marks an HMAC bundle: every holder of its key can forge one.
    """

    path: Path
    suite: str
    run_id: str
    created_at: str
    classification: SecurityLevel
    method: str
    signer_fingerprint: str
    signer_pinned: bool
    integrity_only: bool
    files_checked: int

    def describe(self) -> str:
        """A short report for people, one fact per line."""
        if self.integrity_only:
            signer = (
                f"{self.method} with key {self.signer_fingerprint}: INTEGRITY ONLY, anyone "
                "holding this key can forge a bundle, so it does not show who made it"
            )
        elif self.signer_pinned:
            signer = f"{self.method} by {self.signer_fingerprint}, pinned by the given public key"
        else:
            signer = (
                f"{self.method} by {self.signer_fingerprint}: NOT PINNED, the signer is "
                "identified only by this fingerprint; compare it with the one the publisher "
                "gave you, or pass the publisher's public key"
            )
        return "\n".join(
            [
                f"bundle verified: {self.path}",
                f"  classification: {self.classification.name}",
                f"  suite: {_printable(self.suite)}, run {_printable(self.run_id)}, "
                f"created {_printable(self.created_at)}",
                f"  signature: {signer}",
                f"  files checked: {self.files_checked} (SHA-256 and size of each)",
            ]
        )


@dataclass(frozen=True)
class _Signer:
    method: str
    fingerprint: str
    pinned: bool


def verify_bundle(
    path: Path | str,
    *,
    public_key: Path | str | None = None,
    hmac_key: Path | str | None = None,
    limits: BundleLimits = DEFAULT_LIMITS,
) -> BundleVerification:
    """Check every member's SHA-256 and size and the manifest's signature.

    ``public_key`` (a PEM file) pins the Ed25519 signer; without it the key embedded in the
    manifest is used and the signer is identified only by its fingerprint. An HMAC bundle needs
    ``hmac_key``. Raises :class:`BundleVerificationError` listing every problem,
    :class:`BundleFileError` if ``path`` cannot be opened and :class:`BundleKeyError` for a
    bad key file.
    """
    path = Path(path)
    if public_key is not None and hmac_key is not None:
        raise BundleKeyError("give a public key or an HMAC key, not both")
    pinned = load_public_key(Path(public_key)) if public_key is not None else None
    secret = read_hmac_key(Path(hmac_key)) if hmac_key is not None else None
    try:
        contents = _read(path, limits)
        return _check(path, contents, pinned, secret)
    finally:
        if secret is not None:
            secret[:] = bytes(len(secret))


def _read(path: Path, limits: BundleLimits) -> ArchiveContents:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as error:
        raise BundleFileError(f"{path}: cannot be opened ({error.strerror})") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise BundleFileError(f"{path}: is not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        if info.st_size == 0:
            raise BundleVerificationError(path, ["the file is empty"])
        if info.st_size > limits.total_bytes:
            raise BundleVerificationError(
                path, [f"the file is {info.st_size} bytes, more than a bundle may have"]
            )
        keep = {
            MANIFEST_NAME: limits.manifest_bytes,
            SIGNATURE_NAME: limits.signature_bytes,
            AUDIT_NAME: limits.audit_log_bytes,
        }
        contents = read_archive(handle, limits, keep)
    if contents.unreadable is not None:
        raise BundleVerificationError(path, [*contents.problems, contents.unreadable])
    return contents


def _check(
    path: Path,
    contents: ArchiveContents,
    pinned: Ed25519PublicKey | None,
    secret: bytearray | None,
) -> BundleVerification:
    problems = list(contents.problems)
    manifest_bytes = contents.kept.get(MANIFEST_NAME)
    signature = contents.kept.get(SIGNATURE_NAME)
    if MANIFEST_NAME not in contents.digests:
        problems.append(f"{MANIFEST_NAME}: missing; nothing in the bundle is vouched for")
    if SIGNATURE_NAME not in contents.digests:
        problems.append(f"{SIGNATURE_NAME}: missing; the manifest is unsigned")
    manifest = _parse_manifest(manifest_bytes, problems) if manifest_bytes is not None else None
    block = manifest.signing if manifest is not None else None
    signer = _check_signature(
        manifest_bytes, signature, block, pinned=pinned, secret=secret, problems=problems
    )
    if manifest is not None:
        _check_files(manifest, contents, problems)
        _check_levels(manifest, problems)
        audit_log = contents.kept.get(AUDIT_NAME)
        if audit_log is not None:
            # The bundle holds the log as it was when the reports were written (before the
            # run's last event); its end is vouched for by the signed SHA-256, not the chain.
            problems.extend(check_chain(audit_log, manifest.run_id, name=AUDIT_NAME).problems)
    if problems or manifest is None or signer is None:
        raise BundleVerificationError(path, problems)
    return BundleVerification(
        path=path,
        suite=manifest.suite,
        run_id=manifest.run_id,
        created_at=manifest.created_at,
        classification=manifest.classification,
        method=signer.method,
        signer_fingerprint=signer.fingerprint,
        signer_pinned=signer.pinned,
        integrity_only=signer.method == HMAC_SHA256,
        files_checked=len(manifest.files),
    )


def _parse_manifest(raw: bytes, problems: list[str]) -> BundleManifest | None:
    try:
        parsed = json.loads(raw)
        canonical = canonical_json(parsed)
    except (ValueError, RecursionError):
        problems.append(f"{MANIFEST_NAME}: not valid JSON")
        return None
    if canonical != raw:
        problems.append(
            f"{MANIFEST_NAME}: not in canonical form (keys sorted and each once, no spaces, "
            "ASCII); it was edited or not written by Elspeth"
        )
    try:
        return BundleManifest.model_validate_json(raw, strict=True)
    except ValidationError as error:
        details = error.errors(include_url=False, include_input=False)
        for detail in details[:_MAX_SCHEMA_PROBLEMS]:
            where = ".".join(shown(str(part)) for part in detail["loc"]) or "(top level)"
            problems.append(f"{MANIFEST_NAME}: {where}: {detail['msg']}")
        if len(details) > _MAX_SCHEMA_PROBLEMS:
            problems.append(
                f"{MANIFEST_NAME}: {len(details) - _MAX_SCHEMA_PROBLEMS} more schema problems"
            )
        return None


def _check_signature(
    manifest: bytes | None,
    signature: bytes | None,
    block: Ed25519Block | HmacBlock | None,
    *,
    pinned: Ed25519PublicKey | None,
    secret: bytearray | None,
    problems: list[str],
) -> _Signer | None:
    if isinstance(block, HmacBlock) or (block is None and secret is not None):
        return _check_hmac(
            manifest, signature, block, pinned=pinned, secret=secret, problems=problems
        )
    if isinstance(block, Ed25519Block) or pinned is not None:
        return _check_ed25519(
            manifest, signature, block, pinned=pinned, secret=secret, problems=problems
        )
    if manifest is not None:
        problems.append(
            f"{SIGNATURE_NAME}: cannot be checked: the manifest does not say how it was signed"
        )
    return None


def _check_ed25519(
    manifest: bytes | None,
    signature: bytes | None,
    block: Ed25519Block | None,
    *,
    pinned: Ed25519PublicKey | None,
    secret: bytearray | None,
    problems: list[str],
) -> _Signer | None:
    if secret is not None:
        problems.append(
            f"{MANIFEST_NAME}: the bundle is signed with {ED25519}, not {HMAC_SHA256}; "
            "the HMAC key given does not apply"
        )
    embedded = _embedded_key(block, problems) if block is not None else None
    key = pinned if pinned is not None else embedded
    if key is None:
        return None
    fingerprint = ed25519_fingerprint(raw_public_key(key))
    if (
        pinned is not None
        and embedded is not None
        and raw_public_key(embedded) != (raw_public_key(pinned))
    ):
        named = ed25519_fingerprint(raw_public_key(embedded))
        problems.append(f"{MANIFEST_NAME}: names signer {named}, not the pinned key {fingerprint}")
    if manifest is None or signature is None:
        return None
    try:
        key.verify(signature, manifest)
    except InvalidSignature:
        whose = "" if pinned is not None else " (the key the manifest names)"
        problems.append(
            f"{SIGNATURE_NAME}: signature does not verify with key {fingerprint}{whose}; "
            f"{MANIFEST_NAME} or {SIGNATURE_NAME} was changed, or another key signed it"
        )
    return _Signer(ED25519, fingerprint, pinned is not None)


def _embedded_key(block: Ed25519Block, problems: list[str]) -> Ed25519PublicKey | None:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(block.public_key, validate=True))
    except (binascii.Error, ValueError):
        problems.append(
            f"{MANIFEST_NAME}: signing.public_key is not a base64 raw Ed25519 public key"
        )
        return None
    if ed25519_fingerprint(raw_public_key(key)) != block.fingerprint:
        problems.append(
            f"{MANIFEST_NAME}: signing.fingerprint {_printable(block.fingerprint)} is not the "
            "fingerprint of signing.public_key"
        )
    return key


def _check_hmac(
    manifest: bytes | None,
    signature: bytes | None,
    block: HmacBlock | None,
    *,
    pinned: Ed25519PublicKey | None,
    secret: bytearray | None,
    problems: list[str],
) -> _Signer | None:
    if pinned is not None:
        problems.append(
            f"{MANIFEST_NAME}: the bundle is signed with {HMAC_SHA256} (integrity only), not "
            f"{ED25519}; the public key given cannot check it"
        )
    if secret is None:
        problems.append(
            f"{SIGNATURE_NAME}: an {HMAC_SHA256} bundle can be checked only with its key "
            "(give the HMAC key file)"
        )
        return None
    fingerprint = hmac_fingerprint(secret)
    if block is not None and block.key_fingerprint != fingerprint:
        problems.append(
            f"{MANIFEST_NAME}: names HMAC key {_printable(block.key_fingerprint)}, not the "
            f"given key {fingerprint}"
        )
    if manifest is None or signature is None:
        return None
    if not hmac.compare_digest(HmacSigner(secret).sign(manifest), signature):
        problems.append(
            f"{SIGNATURE_NAME}: HMAC does not verify with key {fingerprint}; "
            f"{MANIFEST_NAME} or {SIGNATURE_NAME} was changed, or another key made it"
        )
    return _Signer(HMAC_SHA256, fingerprint, pinned=True)


def _check_files(manifest: BundleManifest, contents: ArchiveContents, problems: list[str]) -> None:
    for name in sorted(manifest.files):
        record = manifest.files[name]
        found = contents.digests.get(name)
        if found is None:
            problems.append(f"{name}: listed in the manifest but missing from the bundle")
            continue
        sha256, size = found
        if sha256 != record.sha256:
            problems.append(
                f"{name}: SHA-256 differs from the manifest (manifest "
                f"{record.sha256[:_SHOWN_HEX]}…, file {sha256[:_SHOWN_HEX]}…)"
            )
        if size != record.bytes:
            problems.append(
                f"{name}: size differs from the manifest (manifest {record.bytes} bytes, "
                f"file {size} bytes)"
            )
    for name in sorted(set(contents.digests) - set(manifest.files)):
        if name not in (MANIFEST_NAME, SIGNATURE_NAME):
            problems.append(f"{shown(name)}: not listed in the manifest")


def _check_levels(manifest: BundleManifest, problems: list[str]) -> None:
    """The manifest must not label anything below the frames it says are inside."""
    above: dict[str, SecurityLevel] = {}
    for name in sorted(manifest.files):
        record = manifest.files[name]
        levels = [frame.level for frame in record.frames]
        if record.frames:
            frames_level = join_all(levels)
            if record.classification is None or record.classification < frames_level:
                problems.append(
                    f"{name}: classified {_level(record.classification)} in the manifest, "
                    f"below the level {frames_level.name} of the frames it holds"
                )
        if record.classification is not None:
            levels.append(record.classification)
        if levels and join_all(levels) > manifest.classification:
            above[name] = join_all(levels)
    if above:
        first = next(iter(above))
        problems.append(
            f"{MANIFEST_NAME}: classification {manifest.classification.name} is below the level "
            f"{join_all(above.values()).name} of the data it lists ({len(above)} files, such as "
            f"{first})"
        )


def _level(level: SecurityLevel | None) -> str:
    return "nothing" if level is None else level.name


def _printable(text: str) -> str:
    return text if text.isprintable() else ascii(text)
