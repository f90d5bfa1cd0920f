"""SecureDataFrame creation, derivation and verification through the real daemon."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from elspeth.security import (
    AuthorityError,
    SealError,
    SecureDataFrame,
    SecurityLevel,
)
from elspeth.sidecar import SidecarClient

pytestmark = pytest.mark.integration

L = SecurityLevel


def _data() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "text": ["a", "b", "c"]})


def test_create_derive_and_verify(client: SidecarClient) -> None:
    frame = SecureDataFrame.create_from_datasource(_data(), L.OFFICIAL, client)
    assert frame.security_level is L.OFFICIAL
    assert frame.frame_id.startswith(client.boot_id.hex())
    assert frame.verify_seal() > 0

    changed = frame.with_new_data(_data().assign(score=[0.1, 0.2, 0.3]))
    assert changed.security_level is L.OFFICIAL
    assert changed.frame_id != frame.frame_id
    assert changed.verify_seal() > 0

    uplifted = frame.with_uplifted_security_level(L.OFFICIAL_SENSITIVE)
    assert uplifted.security_level is L.OFFICIAL_SENSITIVE
    assert uplifted.verify_seal() > 0
    # Uplifting to a lower level is a no-op join, never a downgrade.
    assert (
        uplifted.with_uplifted_security_level(L.UNOFFICIAL).security_level is L.OFFICIAL_SENSITIVE
    )

    joined = SecureDataFrame.derive_from([frame, uplifted], _data())
    assert joined.security_level is L.OFFICIAL_SENSITIVE


def test_relabelling_through_object_setattr_is_caught(client: SidecarClient) -> None:
    frame = SecureDataFrame.create_from_datasource(_data(), L.OFFICIAL_SENSITIVE, client)
    lowered = dataclasses.replace(frame.certificate, level=L.UNOFFICIAL)
    object.__setattr__(frame, "_certificate", lowered)
    with pytest.raises(SealError):
        frame.verify_seal()


def test_retired_frame_no_longer_verifies(client: SidecarClient) -> None:
    frame = SecureDataFrame.create_from_datasource(_data(), L.OFFICIAL, client)
    frame.retire()
    with pytest.raises(SealError):
        frame.verify_seal()


def test_standalone_refuses_protected_datasources(client: SidecarClient) -> None:
    with pytest.raises(AuthorityError, match="level_refused"):
        SecureDataFrame.create_from_datasource(_data(), L.PROTECTED, client)
