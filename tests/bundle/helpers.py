"""Making bundles through the real sink, and taking them apart the way an attacker would."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from elspeth.bundle import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleConfig,
    BundleSink,
    generate_signing_key,
)
from elspeth.security import SealAuthority, SecurityLevel
from elspeth.sinks import SuiteReport, WrittenArtifact
from tests.support.reports import make_suite_report


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    fingerprint: str


def make_key_pair(directory: Path, name: str) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    return KeyPair(private, public, generate_signing_key(private, public))


@dataclass(frozen=True)
class Written:
    path: Path
    artifact: WrittenArtifact
    report: SuiteReport


def write_bundle(
    authority: SealAuthority,
    directory: Path,
    signing: Mapping[str, Any],
    *,
    level: SecurityLevel = SecurityLevel.OFFICIAL,
    clearance: SecurityLevel | None = None,
    settings: Mapping[str, Any] | None = None,
    audit_log: Path | None = None,
) -> Written:
    """A bundle of :func:`make_suite_report`, written by the real sink into ``directory``."""
    report = make_suite_report(authority, level=level, settings=settings, audit_log=audit_log)
    sink = BundleSink(
        BundleConfig.model_validate({"clearance": clearance or level, "signing": signing})
    )
    path = directory / sink.file_name("evidence", report.level)
    return Written(path, sink.write(report, path), report)


def members(path: Path) -> dict[str, bytes]:
    """Every member of a bundle this test made (trusted input: plain tarfile is fine)."""
    with tarfile.open(path, "r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
        }


def rewrite(path: Path, contents: Mapping[str, bytes]) -> None:
    """Replace the bundle at ``path`` with one holding exactly ``contents``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    path.write_bytes(gzip.compress(raw.getvalue()))


def tampered(path: Path, **changes: bytes | None) -> None:
    """Rewrite the bundle with members changed (``None`` removes one); names use ``__`` for
    ``/`` and ``_dot_`` for ``.`` so they can be keyword arguments."""
    contents = members(path)
    for key, value in changes.items():
        name = key.replace("__", "/").replace("_dot_", ".")
        if value is None:
            del contents[name]
        else:
            contents[name] = value
    rewrite(path, contents)


def manifest_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(members(path)[MANIFEST_NAME])
    return loaded


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")


def forge(path: Path, name: str, content: bytes) -> str:
    """What an attacker without the signer's key can do: change ``name``, fix its hash in the
    manifest, and re-sign with a key of their own that they embed. Returns that key's
    fingerprint."""
    contents = members(path)
    contents[name] = content
    manifest = json.loads(contents[MANIFEST_NAME])
    manifest["files"][name].update(sha256=hashlib.sha256(content).hexdigest(), bytes=len(content))
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fingerprint = "SHA256:" + hashlib.sha256(raw).hexdigest()
    manifest["signing"] = {
        "method": "ed25519",
        "public_key": base64.b64encode(raw).decode(),
        "fingerprint": fingerprint,
    }
    contents[MANIFEST_NAME] = canonical(manifest)
    contents[SIGNATURE_NAME] = key.sign(contents[MANIFEST_NAME])
    rewrite(path, contents)
    return fingerprint


def hostile(*entries: tuple[tarfile.TarInfo, bytes], tail: bytes = b"") -> bytes:
    """A tar.gz of hand-made members (any type or name), with ``tail`` after the archive."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in entries:
            archive.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return gzip.compress(raw.getvalue() + tail)


def entry(
    name: str, content: bytes = b"x", kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(content) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "results/baseline.parquet"
    return info, content
