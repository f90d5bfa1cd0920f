"""Signing and verification keys: reading key files with care, fingerprints, key generation.

A private key file (Ed25519 PEM or raw HMAC key) is opened without following a final symlink,
without blocking on a FIFO, and checked on the open descriptor: it must be a regular file with no
group or other permission bits. Messages name the file and the fix, never its content.

The HMAC key's fingerprint is an HMAC of a fixed label under the key, not a hash of the key:
HMAC-SHA256 replaces a key longer than its 64-byte block by that key's SHA-256, so publishing
``SHA-256(key)`` would publish the working key of every such key and let anyone forge.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
import tempfile
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from elspeth.bundle._errors import BundleKeyError

PRIVATE_KEY_MODE: Final = 0o600
PUBLIC_KEY_MODE: Final = 0o644
HMAC_MIN_KEY_BYTES: Final = 32
ED25519_FINGERPRINT_PREFIX: Final = "SHA256:"
HMAC_FINGERPRINT_PREFIX: Final = "HMAC-SHA256:"

_FORBIDDEN_BITS: Final = stat.S_IRWXG | stat.S_IRWXO
_MAX_KEY_FILE_BYTES: Final = 64 * 1024
_HMAC_FINGERPRINT_LABEL: Final = b"elspeth-bundle-v1 hmac key fingerprint"
_KEYGEN_HINT: Final = "make one with: elspeth keygen --private FILE --public FILE"


def read_secret_file(path: Path, description: str) -> bytearray:
    """The bytes of a private key file, refusing symlinks, non-regular files and group/other
    permission bits. The caller should zero the returned buffer when done."""
    return _read_key_file(path, description, private=True)


def _read_key_file(path: Path, description: str, *, private: bool) -> bytearray:
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    if private:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BundleKeyError(f"{description} file {path} does not exist") from None
    except OSError as error:
        rule = "a regular file (not a symlink)" if private else "a regular file"
        raise BundleKeyError(
            f"{description} file {path} cannot be opened ({error.strerror}); it must be "
            f"{rule} readable by this user"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BundleKeyError(f"{description} file {path} is not a regular file")
        if private and info.st_mode & _FORBIDDEN_BITS:
            raise BundleKeyError(
                f"{description} file {path} has mode {stat.S_IMODE(info.st_mode):04o}, which "
                f"lets other users read or change it; fix with: chmod 0600 {path}"
            )
        content = bytearray(_MAX_KEY_FILE_BYTES + 1)
        view = memoryview(content)
        filled = 0
        while filled < len(content) and (count := os.readv(fd, [view[filled:]])):
            filled += count
        view.release()
        if filled > _MAX_KEY_FILE_BYTES:
            content[:] = bytes(len(content))
            raise BundleKeyError(
                f"{description} file {path} is larger than {_MAX_KEY_FILE_BYTES} bytes; "
                "it is not a key file"
            )
        exact = content[:filled]
        content[:] = bytes(len(content))
        return exact
    except OSError as error:
        raise BundleKeyError(
            f"{description} file {path} cannot be read ({error.strerror})"
        ) from None
    finally:
        os.close(fd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from an unencrypted PEM PKCS#8 file only this user can read."""
    content = read_secret_file(path, "Ed25519 private key")
    try:
        key = serialization.load_pem_private_key(content, password=None)
    except TypeError:
        raise BundleKeyError(
            f"Ed25519 private key file {path} is encrypted; Elspeth reads an unencrypted PEM "
            "key from a file only its user can read (mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise BundleKeyError(
            f"Ed25519 private key file {path} does not hold a PEM private key "
            f"('-----BEGIN PRIVATE KEY-----'); {_KEYGEN_HINT}"
        ) from None
    finally:
        content[:] = bytes(len(content))
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleKeyError(
            f"Ed25519 private key file {path} holds a {type(key).__name__.removeprefix('_')}, "
            f"not an Ed25519 key; {_KEYGEN_HINT}"
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (``-----BEGIN PUBLIC KEY-----``)."""
    content = bytes(_read_key_file(path, "Ed25519 public key", private=False))
    try:
        key = serialization.load_pem_public_key(content)
    except (ValueError, UnsupportedAlgorithm):
        raise BundleKeyError(
            f"Ed25519 public key file {path} does not hold a PEM public key "
            "('-----BEGIN PUBLIC KEY-----', as written by elspeth keygen --public)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleKeyError(f"Ed25519 public key file {path} holds a key of another type")
    return key


def read_hmac_key(path: Path) -> bytearray:
    """The HMAC key: every byte of the file (no newline stripped), at least 32 of them."""
    key = read_secret_file(path, "HMAC key")
    if len(key) < HMAC_MIN_KEY_BYTES:
        size = len(key)
        key[:] = bytes(size)
        raise BundleKeyError(
            f"HMAC key file {path} holds {size} bytes; it needs at least {HMAC_MIN_KEY_BYTES} "
            f"random bytes (e.g. head -c 32 /dev/urandom > {path}; chmod 0600 {path})"
        )
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_fingerprint(raw: bytes) -> str:
    """``SHA256:`` and the hex SHA-256 of the raw 32-byte public key."""
    return ED25519_FINGERPRINT_PREFIX + hashlib.sha256(raw).hexdigest()


def hmac_fingerprint(key: bytes | bytearray) -> str:
    """A name for an HMAC key that reveals nothing usable about it (see the module docstring)."""
    return HMAC_FINGERPRINT_PREFIX + hmac.new(key, _HMAC_FINGERPRINT_LABEL, "sha256").hexdigest()


def generate_signing_key(private_path: Path | str, public_path: Path | str) -> str:
    """Write a new Ed25519 key pair; return the public key's fingerprint.

    The private key (unencrypted PEM PKCS#8, mode 0600) and the public key (PEM
    SubjectPublicKeyInfo, 0644) each appear atomically; neither file may exist already. If the
    public key cannot be written, the new private key is removed again.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.absolute() == public_path.absolute():
        raise BundleKeyError(f"the private and public key files are the same: {private_path}")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise BundleKeyError(f"{path} already exists; Elspeth never overwrites a key file")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_key = key.public_key()
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _create_file(private_path, private_pem, PRIVATE_KEY_MODE, "private key")
    try:
        _create_file(public_path, public_pem, PUBLIC_KEY_MODE, "public key")
    except BaseException:
        private_path.unlink()
        raise
    return ed25519_fingerprint(raw_public_key(public_key))


def _create_file(path: Path, content: bytes, mode: int, description: str) -> None:
    """Write ``content`` under a temporary name, then link it into place: the file appears
    complete or not at all, and an existing file is never replaced."""
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
        )
    except OSError as error:
        raise BundleKeyError(f"cannot create {description} file {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        raise BundleKeyError(
            f"{path} already exists; Elspeth never overwrites a key file"
        ) from None
    except OSError as error:
        raise BundleKeyError(f"cannot create {description} file {path}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
