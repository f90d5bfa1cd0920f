"""Bundle tests use the real standalone seal authority of the datasource tests, and real keys.

Writing a bundle takes a fraction of a second, so the tamper tests share two (one Ed25519, one
HMAC, both OFFICIAL_SENSITIVE) made once per module, and each test works on its own copy.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from elspeth.security import SecurityLevel
from elspeth.sidecar import StandaloneDaemon
from tests.bundle.helpers import KeyPair, Written, make_key_pair, write_bundle
from tests.datasources.conftest import authority, daemon

__all__ = ["authority", "daemon"]

SHARED_LEVEL = SecurityLevel.OFFICIAL_SENSITIVE


def write_hmac_key(path: Path, content: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(32) if content is None else content)
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class SharedBundles:
    signer: KeyPair
    signed: Written
    hmac_key: Path
    hmac: Written


@pytest.fixture(scope="module")
def shared(daemon: StandaloneDaemon, tmp_path_factory: pytest.TempPathFactory) -> SharedBundles:
    directory = tmp_path_factory.mktemp("shared")
    signer = make_key_pair(directory / "keys", "signer")
    hmac_key = write_hmac_key(directory / "keys" / "hmac.key")
    with daemon.connect(op_timeout=10.0) as client:
        signed = write_bundle(
            client,
            directory / "signed",
            {"method": "ed25519", "private_key_path": str(signer.private)},
            level=SHARED_LEVEL,
        )
        hmac = write_bundle(
            client,
            directory / "hmac",
            {"method": "hmac-sha256", "key_path": str(hmac_key)},
            level=SHARED_LEVEL,
        )
    # The client is closed (its frames retired) before the tests run: they make origin frames of
    # the same sample data at lower levels, which the daemon refuses while a higher copy is live.
    return SharedBundles(signer, signed, hmac_key, hmac)


@pytest.fixture
def signed_copy(shared: SharedBundles, tmp_path: Path) -> Path:
    """A private copy of the shared Ed25519 bundle, free to tamper with."""
    return Path(shutil.copy(shared.signed.path, tmp_path / shared.signed.path.name))


@pytest.fixture
def hmac_copy(shared: SharedBundles, tmp_path: Path) -> Path:
    return Path(shutil.copy(shared.hmac.path, tmp_path / shared.hmac.path.name))


@pytest.fixture
def signing_key(tmp_path: Path) -> KeyPair:
    return make_key_pair(tmp_path / "keys", "signer")
