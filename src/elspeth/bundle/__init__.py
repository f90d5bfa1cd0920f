"""Signed reproducibility bundles: write them as a report sink, verify them anywhere.

A bundle (``bundle__<sink>__<LEVEL>.tar.gz``, mode 0600) holds a suite run's results,
aggregates and comparisons as classified Parquet, the redacted effective settings, prompts,
plugin and package versions, the clearance plan and the audit log, and ``MANIFEST.json``: the
SHA-256 of every file and the id, level, digest and seal audit id of every frame, signed in
``MANIFEST.sig`` with Ed25519 (or, for internal integrity only, HMAC-SHA256). See
``docs/bundles.md``.

The sink and its settings load pandas and the sinks on first use, so verifying a bundle
(``elspeth verify-bundle``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from elspeth.bundle._errors import (
    BundleError,
    BundleFileError,
    BundleKeyError,
    BundleVerificationError,
)

if TYPE_CHECKING:
    from elspeth.bundle._config import BundleConfig, BundleSigning, Ed25519Signing, HmacSigning
    from elspeth.bundle._keys import (
        HMAC_MIN_KEY_BYTES,
        ed25519_fingerprint,
        generate_signing_key,
        hmac_fingerprint,
    )
    from elspeth.bundle._manifest import (
        BUNDLE_FORMAT,
        DEFAULT_LIMITS,
        MANIFEST_NAME,
        SIGNATURE_NAME,
        BundleLimits,
        BundleManifest,
        FileRecord,
        FrameRecord,
    )
    from elspeth.bundle._sink import BundleSink
    from elspeth.bundle._verify import BundleVerification, verify_bundle

# Imported on first use: a run without a bundle never loads cryptography or the bundle format.
_LAZY = {
    **dict.fromkeys(
        ("HMAC_MIN_KEY_BYTES", "ed25519_fingerprint", "generate_signing_key", "hmac_fingerprint"),
        "elspeth.bundle._keys",
    ),
    **dict.fromkeys(
        (
            "BUNDLE_FORMAT",
            "DEFAULT_LIMITS",
            "MANIFEST_NAME",
            "SIGNATURE_NAME",
            "BundleLimits",
            "BundleManifest",
            "FileRecord",
            "FrameRecord",
        ),
        "elspeth.bundle._manifest",
    ),
    "BundleVerification": "elspeth.bundle._verify",
    "verify_bundle": "elspeth.bundle._verify",
    "BundleConfig": "elspeth.bundle._config",
    "BundleSigning": "elspeth.bundle._config",
    "Ed25519Signing": "elspeth.bundle._config",
    "HmacSigning": "elspeth.bundle._config",
    "BundleSink": "elspeth.bundle._sink",
}

__all__ = [
    "BUNDLE_FORMAT",
    "DEFAULT_LIMITS",
    "HMAC_MIN_KEY_BYTES",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "BundleConfig",
    "BundleError",
    "BundleFileError",
    "BundleKeyError",
    "BundleLimits",
    "BundleManifest",
    "BundleSigning",
    "BundleSink",
    "BundleVerification",
    "BundleVerificationError",
    "Ed25519Signing",
    "FileRecord",
    "FrameRecord",
    "HmacSigning",
    "ed25519_fingerprint",
    "generate_signing_key",
    "hmac_fingerprint",
    "verify_bundle",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'elspeth.bundle' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
