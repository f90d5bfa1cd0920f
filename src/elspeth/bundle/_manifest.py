"""The bundle's manifest: one schema for the writer and the verifier, in canonical JSON.

``MANIFEST.json`` is the single signed document of a bundle. Its bytes are canonical JSON (keys
sorted, no insignificant whitespace, ASCII only), so the signature covers one exact byte string
and a verifier can insist the file is in that form: a manifest that re-serialises differently
(duplicate keys, extra spaces) is refused rather than interpreted.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from elspeth.security import DIGEST_SIZE, SecurityLevel

BUNDLE_FORMAT: Final = "elspeth-bundle-v1"
MANIFEST_NAME: Final = "MANIFEST.json"
SIGNATURE_NAME: Final = "MANIFEST.sig"
ED25519: Final = "ed25519"
HMAC_SHA256: Final = "hmac-sha256"
HMAC_NOTE: Final = (
    "integrity only: anyone holding the HMAC key can forge this bundle, "
    "so it does not show who made it"
)

_MEMBER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*")
_MAX_NAME_LENGTH: Final = 255
_SHOWN_LENGTH: Final = 120


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """What a verifier reads at most; the writer refuses to make a bundle beyond them.

    Members are hashed as they stream past, so memory stays near one read block plus the
    manifest, whatever the bundle's size.
    """

    members: int = 10_000
    member_bytes: int = 1 << 30
    total_bytes: int = 4 << 30
    manifest_bytes: int = 64 << 20
    signature_bytes: int = 1024
    audit_log_bytes: int = 256 << 20
    """The audit log is read whole to check its hash chain."""


DEFAULT_LIMITS: Final = BundleLimits()


def member_name_problem(name: str) -> str | None:
    """Why ``name`` may not name a bundle member, or ``None`` if it may."""
    if name.startswith("/"):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a path climbing out with '..'"
    if len(name) > _MAX_NAME_LENGTH:
        return f"a name longer than {_MAX_NAME_LENGTH} characters"
    if not _MEMBER_NAME.fullmatch(name):
        return "not a plain relative path (letters, digits, '_', '.', '-', '/' only)"
    return None


def shown(name: str) -> str:
    """An untrusted member name made safe to print: escaped (quoted) if it holds control,
    formatting or edge-space characters, and shortened if long."""
    if name.isprintable() and name.strip() == name and 0 < len(name) <= _SHOWN_LENGTH:
        return name
    clipped = name[:_SHOWN_LENGTH]
    return ascii(clipped) + ("…" if len(name) > _SHOWN_LENGTH else "")


def canonical_json(value: Any) -> bytes:
    """The one byte string the manifest's signature covers."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def _exact_level(value: object) -> SecurityLevel:
    if isinstance(value, SecurityLevel):
        return value
    if isinstance(value, str) and value in SecurityLevel.__members__:
        return SecurityLevel[value]
    raise ValueError(f"must be one of {', '.join(SecurityLevel.__members__)}")


def _member_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    problem = member_name_problem(value)
    if problem is not None:
        raise ValueError(f"is {problem}")
    return value


LevelName = Annotated[
    SecurityLevel,
    PlainValidator(_exact_level),
    PlainSerializer(lambda level: level.name, return_type=str),
]
MemberName = Annotated[str, PlainValidator(_member_name)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, Field(max_length=1024)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FrameRecord(_Record):
    """A sealed frame held in a data file, as the seal authority released it."""

    frame_id: Annotated[str, Field(min_length=1, max_length=256)]
    level: LevelName
    digest: Annotated[str, Field(pattern=rf"^[0-9a-f]{{{2 * DIGEST_SIZE}}}$")]
    seal_audit_id: Annotated[int, Field(ge=0)]


class FileRecord(_Record):
    """One member besides the manifest and its signature. Data files carry their level and
    frames; the others are covered by the bundle's classification."""

    sha256: Sha256Hex
    bytes: Annotated[int, Field(ge=0)]
    classification: LevelName | None = None
    frames: tuple[FrameRecord, ...] = ()

    @classmethod
    def from_content(
        cls,
        content: builtins.bytes,
        *,
        classification: SecurityLevel | None = None,
        frames: tuple[FrameRecord, ...] = (),
    ) -> FileRecord:
        return cls(
            sha256=hashlib.sha256(content).hexdigest(),
            bytes=len(content),
            classification=classification,
            frames=frames,
        )


class Ed25519Block(_Record):
    """A signature anyone can check and only the private key's holder can make."""

    method: Literal["ed25519"]
    public_key: Annotated[str, Field(max_length=64)]
    """The raw 32-byte public key, base64."""
    fingerprint: Annotated[str, Field(max_length=128)]
    """``SHA256:`` and the hex SHA-256 of the raw public key."""


class HmacBlock(_Record):
    """A shared-key MAC: integrity against accidents and outsiders, never proof of origin."""

    method: Literal["hmac-sha256"]
    integrity_only: Literal[True]
    key_fingerprint: Annotated[str, Field(max_length=128)]
    """``HMAC-SHA256:`` and the hex HMAC of a fixed label under the key (not a hash of it)."""
    note: Text


SigningBlock = Annotated[Ed25519Block | HmacBlock, Field(discriminator="method")]


class BundleManifest(_Record):
    """``MANIFEST.json``: what the bundle holds, at which level, and who signed it."""

    format: Literal["elspeth-bundle-v1"]
    suite: Text
    run_id: Text
    created_at: Text
    classification: LevelName
    files: dict[MemberName, FileRecord]
    signing: SigningBlock

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", exclude_defaults=True))
