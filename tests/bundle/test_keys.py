"""Key files are read with care (mode, type, content) and named, never shown, in errors; new key
pairs are written privately and never over an existing file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from elspeth.bundle import (
    BundleConfig,
    BundleKeyError,
    BundleSink,
    generate_signing_key,
    verify_bundle,
)
from elspeth.errors import ConfigurationError
from tests.bundle.conftest import SharedBundles, write_hmac_key
from tests.bundle.helpers import KeyPair


def ed25519_sink(path: Path) -> BundleSink:
    return BundleSink(
        BundleConfig.model_validate(
            {
                "clearance": "OFFICIAL",
                "signing": {"method": "ed25519", "private_key_path": str(path)},
            }
        )
    )


def hmac_sink(path: Path) -> BundleSink:
    return BundleSink(
        BundleConfig.model_validate(
            {"clearance": "OFFICIAL", "signing": {"method": "hmac-sha256", "key_path": str(path)}}
        )
    )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_private_key_others_can_read_is_refused_naming_the_path(
    signing_key: KeyPair, mode: int
) -> None:
    signing_key.private.chmod(mode)

    with pytest.raises(BundleKeyError) as raised:
        ed25519_sink(signing_key.private)

    message = str(raised.value)
    assert str(signing_key.private) in message
    assert f"has mode {mode:04o}" in message
    assert f"chmod 0600 {signing_key.private}" in message
    assert "PRIVATE KEY" not in message
    assert isinstance(raised.value, ConfigurationError)


def test_an_hmac_key_others_can_read_is_refused(tmp_path: Path) -> None:
    key = write_hmac_key(tmp_path / "hmac.key")
    key.chmod(0o644)

    with pytest.raises(BundleKeyError, match=r"hmac\.key has mode 0644"):
        hmac_sink(key)


def test_read_only_keys_are_fine(signing_key: KeyPair, tmp_path: Path) -> None:
    signing_key.private.chmod(0o400)
    key = write_hmac_key(tmp_path / "hmac.key")
    key.chmod(0o400)

    ed25519_sink(signing_key.private)
    hmac_sink(key)


def test_a_symlinked_directory_or_missing_key_is_refused(
    signing_key: KeyPair, tmp_path: Path
) -> None:
    link = tmp_path / "link.pem"
    link.symlink_to(signing_key.private)

    with pytest.raises(BundleKeyError, match="it must be a regular file \\(not a symlink\\)"):
        ed25519_sink(link)
    with pytest.raises(BundleKeyError, match="is not a regular file"):
        ed25519_sink(tmp_path)
    with pytest.raises(BundleKeyError, match=r"absent\.pem does not exist"):
        ed25519_sink(tmp_path / "absent.pem")


def test_key_file_content_is_never_shown(tmp_path: Path) -> None:
    garbage = write_hmac_key(tmp_path / "garbage.pem", b"-----BEGIN PRIVATE KEY-----\nS3CR3T\n")
    short = write_hmac_key(tmp_path / "short.key", b"S3CR3T-but-short")

    with pytest.raises(BundleKeyError) as not_pem:
        ed25519_sink(garbage)
    with pytest.raises(BundleKeyError) as too_short:
        hmac_sink(short)

    assert "does not hold a PEM private key" in str(not_pem.value)
    assert "holds 16 bytes; it needs at least 32" in str(too_short.value)
    for error in (not_pem.value, too_short.value):
        assert "S3CR3T" not in str(error)


def test_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    path = write_hmac_key(
        tmp_path / "ec.pem",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )

    with pytest.raises(BundleKeyError, match="not an Ed25519 key"):
        ed25519_sink(path)


def test_an_encrypted_key_is_refused(tmp_path: Path, signing_key: KeyPair) -> None:
    key = serialization.load_pem_private_key(signing_key.private.read_bytes(), password=None)
    path = write_hmac_key(
        tmp_path / "encrypted.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ),
    )

    with pytest.raises(BundleKeyError, match="is encrypted"):
        ed25519_sink(path)


def test_keygen_writes_a_private_and_a_public_key(tmp_path: Path) -> None:
    private, public = tmp_path / "signer.pem", tmp_path / "signer.pub.pem"

    fingerprint = generate_signing_key(private, public)

    assert private.stat().st_mode & 0o777 == 0o600
    assert public.stat().st_mode & 0o777 == 0o644
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_public_key(public.read_bytes())
    raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert fingerprint == "SHA256:" + hashlib.sha256(raw).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signer.pem", "signer.pub.pem"]


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    private, public = tmp_path / "signer.pem", tmp_path / "signer.pub.pem"
    public.write_bytes(b"someone else's key")

    with pytest.raises(BundleKeyError, match=r"signer\.pub\.pem already exists"):
        generate_signing_key(private, public)
    with pytest.raises(BundleKeyError, match="are the same"):
        generate_signing_key(private, private)

    assert public.read_bytes() == b"someone else's key"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signer.pub.pem"]


def test_keygen_removes_the_private_key_if_the_public_key_fails(tmp_path: Path) -> None:
    private = tmp_path / "signer.pem"

    with pytest.raises(BundleKeyError, match="cannot create public key file"):
        generate_signing_key(private, tmp_path / "absent" / "signer.pub.pem")

    assert list(tmp_path.iterdir()) == []


def test_a_pinned_public_key_file_is_checked(shared: SharedBundles, tmp_path: Path) -> None:
    with pytest.raises(BundleKeyError, match="does not hold a PEM public key"):
        verify_bundle(shared.signed.path, public_key=shared.signer.private)
    with pytest.raises(BundleKeyError, match="not both"):
        verify_bundle(shared.signed.path, public_key=shared.signer.public, hmac_key=shared.hmac_key)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(BundleKeyError, match="is not a regular file"):
        verify_bundle(shared.signed.path, public_key=tmp_path / "fifo")
