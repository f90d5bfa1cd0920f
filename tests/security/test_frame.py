"""SecureDataFrame: creation only through the seal authority, immutability, anti-laundering."""

from __future__ import annotations

import copy
import pickle

import pandas as pd
import pytest

from elspeth.security import (
    AuthorityError,
    ClearanceError,
    FrameCertificate,
    FrameConstructionError,
    SealError,
    SecureDataFrame,
    SecurityLevel,
)
from tests.security.memory_authority import InMemorySealAuthorityForTests

L = SecurityLevel


@pytest.fixture
def authority() -> InMemorySealAuthorityForTests:
    return InMemorySealAuthorityForTests()


@pytest.fixture
def frame(authority: InMemorySealAuthorityForTests) -> SecureDataFrame:
    data = pd.DataFrame({"id": [1, 2, 3], "text": ["a", "b", "c"]})
    return SecureDataFrame.create_from_datasource(data, L.OFFICIAL, authority)


def test_origin_frames_go_through_a_one_shot_grant(
    frame: SecureDataFrame, authority: InMemorySealAuthorityForTests
) -> None:
    assert authority.calls == ["authorize_construct", "redeem_grant"]
    assert frame.security_level is L.OFFICIAL
    assert frame.shape == (3, 2)
    assert len(frame.digest) == 32
    assert frame.verify_seal() > 0


def test_uplift_makes_a_new_frame_and_never_lowers(frame: SecureDataFrame) -> None:
    higher = frame.with_uplifted_security_level(L.PROTECTED)
    assert higher.security_level is L.PROTECTED
    assert higher.frame_id != frame.frame_id
    assert higher.digest == frame.digest
    same = higher.with_uplifted_security_level(L.UNOFFICIAL)
    assert same.security_level is L.PROTECTED
    assert frame.security_level is L.OFFICIAL


def test_new_data_keeps_the_parents_level(frame: SecureDataFrame) -> None:
    higher = frame.with_uplifted_security_level(L.SECRET)
    derived = higher.with_new_data(pd.DataFrame({"score": [0.5]}))
    assert derived.security_level is L.SECRET
    assert derived.digest != higher.digest
    assert derived.verify_seal() > 0


def test_derive_from_many_parents_takes_the_join_and_floor(
    frame: SecureDataFrame, authority: InMemorySealAuthorityForTests
) -> None:
    other = SecureDataFrame.create_from_datasource(pd.DataFrame({"x": [1]}), L.PROTECTED, authority)
    derived = SecureDataFrame.derive_from([frame, other], pd.DataFrame({"n": [2]}))
    assert derived.security_level is L.PROTECTED
    floored = SecureDataFrame.derive_from([frame], pd.DataFrame({"n": [2]}), floor=L.SECRET)
    assert floored.security_level is L.SECRET


def test_validate_compatible_with_refuses_read_up(frame: SecureDataFrame) -> None:
    frame.validate_compatible_with(L.OFFICIAL)
    frame.validate_compatible_with(L.SECRET)
    with pytest.raises(ClearanceError, match="above the clearance UNOFFICIAL"):
        frame.validate_compatible_with(L.UNOFFICIAL)
    with pytest.raises(ClearanceError):
        frame.verify_for(L.UNOFFICIAL)


def test_reading_data_returns_a_copy_that_cannot_change_the_frame(
    frame: SecureDataFrame,
) -> None:
    view = frame.data
    view.loc[0, "text"] = "tampered"
    assert frame.data.loc[0, "text"] == "a"
    frame.verify_seal()


def test_input_dataframe_changes_after_creation_do_not_reach_the_frame(
    authority: InMemorySealAuthorityForTests,
) -> None:
    source = pd.DataFrame({"v": [1, 2]})
    frame = SecureDataFrame.create_from_datasource(source, L.OFFICIAL, authority)
    source.loc[0, "v"] = 99
    assert frame.data["v"].tolist() == [1, 2]
    frame.verify_seal()


# --- anti-laundering: every refused path ---------------------------------------------------


def test_direct_construction_is_refused() -> None:
    with pytest.raises(FrameConstructionError, match="only from the seal authority"):
        SecureDataFrame(pd.DataFrame(), L.UNOFFICIAL)


def test_a_bare_instance_from_new_never_passes_a_seal_check() -> None:
    shell = object.__new__(SecureDataFrame)
    with pytest.raises(SealError, match="not issued by a seal authority"):
        shell.verify_seal()


def test_subclassing_is_refused() -> None:
    with pytest.raises(FrameConstructionError, match="cannot be subclassed"):

        class Laundered(SecureDataFrame):  # type: ignore[misc]
            pass


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_is_refused(frame: SecureDataFrame, protocol: int) -> None:
    with pytest.raises(FrameConstructionError, match="cannot be pickled"):
        pickle.dumps(frame, protocol=protocol)


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy])
def test_copying_is_refused(frame: SecureDataFrame, copier: object) -> None:
    with pytest.raises(FrameConstructionError, match="cannot be copied"):
        copier(frame)  # type: ignore[operator]


def test_attribute_assignment_and_deletion_are_refused(frame: SecureDataFrame) -> None:
    with pytest.raises(FrameConstructionError, match="immutable"):
        frame._certificate = frame.certificate  # type: ignore[misc]
    with pytest.raises(FrameConstructionError, match="immutable"):
        del frame._data


def test_relabel_through_object_setattr_is_caught_by_the_next_seal_check(
    frame: SecureDataFrame,
) -> None:
    secret = frame.with_uplifted_security_level(L.SECRET)
    lowered = FrameCertificate(
        secret.frame_id, L.UNOFFICIAL, secret.digest, secret.seal, secret.certificate.audit_id
    )
    object.__setattr__(secret, "_certificate", lowered)
    assert secret.security_level is L.UNOFFICIAL
    with pytest.raises(SealError):
        secret.verify_seal()


def test_borrowing_another_frames_certificate_is_caught(
    frame: SecureDataFrame, authority: InMemorySealAuthorityForTests
) -> None:
    public = SecureDataFrame.create_from_datasource(
        pd.DataFrame({"id": [9]}), L.UNOFFICIAL, authority
    )
    object.__setattr__(frame, "_certificate", public.certificate)
    with pytest.raises(SealError, match="content changed since it was sealed"):
        frame.verify_seal()


def test_swapped_content_is_caught(frame: SecureDataFrame) -> None:
    object.__setattr__(frame, "_data", pd.DataFrame({"id": [7]}))
    with pytest.raises(SealError, match="content changed"):
        frame.verify_seal()


def test_retired_frames_never_verify_again(frame: SecureDataFrame) -> None:
    frame.retire()
    with pytest.raises(SealError):
        frame.verify_seal()


def test_parents_from_different_authorities_are_refused(frame: SecureDataFrame) -> None:
    stranger = SecureDataFrame.create_from_datasource(
        pd.DataFrame({"x": [1]}), L.OFFICIAL, InMemorySealAuthorityForTests()
    )
    with pytest.raises(FrameConstructionError, match="different seal authorities"):
        SecureDataFrame.derive_from([frame, stranger], pd.DataFrame({"y": [1]}))


class _LowballingAuthority(InMemorySealAuthorityForTests):
    """A broken authority that issues lower levels than asked: the frame must fail closed."""

    def derive(self, parent_ids, digest, floor=None):  # type: ignore[no-untyped-def]
        certificate = super().derive(parent_ids, digest, None)
        return FrameCertificate(
            certificate.frame_id, L.UNOFFICIAL, digest, certificate.seal, certificate.audit_id
        )


def test_an_authority_answer_below_the_join_fails_closed() -> None:
    authority = _LowballingAuthority()
    frame = SecureDataFrame.create_from_datasource(pd.DataFrame({"a": [1]}), L.SECRET, authority)
    with pytest.raises(AuthorityError, match="below the required SECRET"):
        frame.with_new_data(pd.DataFrame({"a": [2]}))


def test_repr_shows_no_content(frame: SecureDataFrame) -> None:
    text = repr(frame)
    assert frame.frame_id in text
    assert "OFFICIAL" in text
    assert "'a'" not in text
    assert "text" not in text
