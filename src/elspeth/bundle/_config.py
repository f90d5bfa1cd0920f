"""Bundle sink settings: where the signing key is, and which kind of signature to make."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from elspeth.sinks import ReportSinkSettings


class Ed25519Signing(BaseModel):
    """Sign with Ed25519: anyone with the public key can verify, only the key holder can sign."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["ed25519"]
    private_key_path: Path = Field(
        description=(
            "Unencrypted PEM PKCS#8 Ed25519 private key (elspeth keygen), or a mounted secret "
            "file; a regular file readable by its owner only (mode 0600 or 0400)."
        )
    )


class HmacSigning(BaseModel):
    """HMAC-SHA256 under a shared key. INTERNAL INTEGRITY ONLY: anyone with the key can forge a
    bundle, so it proves nothing to a third party about who made it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["hmac-sha256"]
    key_path: Path = Field(
        description=(
            "At least 32 random bytes (every byte of the file is key); a regular file readable "
            "by its owner only. Integrity only: every holder of the key can forge."
        )
    )


BundleSigning = Annotated[Ed25519Signing | HmacSigning, Field(discriminator="method")]


class BundleConfig(ReportSinkSettings):
    """A signed reproducibility bundle (``.tar.gz``) of the whole suite."""

    type: Literal["bundle"] = "bundle"
    signing: BundleSigning
