"""The two ways a manifest is signed, each with the block the manifest records about it."""

from __future__ import annotations

import base64
import hmac
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from elspeth.bundle._keys import (
    ed25519_fingerprint,
    hmac_fingerprint,
    load_private_key,
    raw_public_key,
    read_hmac_key,
)
from elspeth.bundle._manifest import ED25519, HMAC_NOTE, HMAC_SHA256, Ed25519Block, HmacBlock


class Signer(Protocol):
    @property
    def block(self) -> Ed25519Block | HmacBlock:
        """What the manifest says about this signer."""

    def sign(self, message: bytes) -> bytes:
        """The signature over the exact bytes ``message``."""


class Ed25519Signer:
    """Signs with an Ed25519 private key; the manifest carries the public key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = raw_public_key(key.public_key())
        self._block = Ed25519Block(
            method=ED25519,
            public_key=base64.b64encode(raw).decode("ascii"),
            fingerprint=ed25519_fingerprint(raw),
        )

    @classmethod
    def from_file(cls, path: Path) -> Ed25519Signer:
        return cls(load_private_key(path))

    @property
    def block(self) -> Ed25519Block:
        return self._block

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class HmacSigner:
    """HMAC-SHA256 under a shared key: integrity only, since every key holder can sign."""

    def __init__(self, key: bytearray) -> None:
        self._key = key
        self._block = HmacBlock(
            method=HMAC_SHA256,
            integrity_only=True,
            key_fingerprint=hmac_fingerprint(key),
            note=HMAC_NOTE,
        )

    @classmethod
    def from_file(cls, path: Path) -> HmacSigner:
        return cls(read_hmac_key(path))

    @property
    def block(self) -> HmacBlock:
        return self._block

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self._key, message, "sha256").digest()
