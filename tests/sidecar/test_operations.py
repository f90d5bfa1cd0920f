"""Every operation's success and refusal paths, against a real standalone daemon."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable

import pytest

from elspeth.security import (
    AuthorityError,
    DeriveRequest,
    FrameCertificate,
    SealError,
    SecurityLevel,
)
from elspeth.sidecar import (
    CheckpointMismatchError,
    RequestRefusedError,
    SealRejectedError,
    SidecarClient,
    StandaloneDaemon,
)
from tests.sidecar.conftest import DIGEST_A, DIGEST_B, RawConnection

pytestmark = pytest.mark.integration

L = SecurityLevel


def _origin(
    client: SidecarClient, level: SecurityLevel = L.OFFICIAL, digest: bytes | None = None
) -> FrameCertificate:
    """An origin frame; of fresh content unless ``digest`` is given, so that origins at several
    levels never share content (the daemon refuses that as a downgrade)."""
    return client.redeem_grant(
        client.authorize_construct(level, secrets.token_bytes(32) if digest is None else digest)
    )


# --- grants --------------------------------------------------------------------------------


def test_grant_redeems_once_into_a_sealed_frame(client: SidecarClient) -> None:
    grant = client.authorize_construct(L.OFFICIAL, DIGEST_A)
    assert len(grant.grant_id) == 32
    assert grant.level is L.OFFICIAL
    assert grant.expires_at > time.time()
    certificate = client.redeem_grant(grant)
    assert certificate.level is L.OFFICIAL
    assert certificate.digest == DIGEST_A
    assert certificate.frame_id.startswith(client.boot_id.hex() + "-")
    assert certificate.audit_id > grant.audit_id
    assert client.verify_seal(certificate) > certificate.audit_id


def test_grant_replay_is_refused(client: SidecarClient) -> None:
    grant = client.authorize_construct(L.OFFICIAL, DIGEST_A)
    client.redeem_grant(grant)
    with pytest.raises(RequestRefusedError) as caught:
        client.redeem_grant(grant)
    assert caught.value.code == "unknown_grant"


def test_forged_and_unknown_grants_are_refused(client: SidecarClient) -> None:
    grant = client.authorize_construct(L.OFFICIAL, DIGEST_A)
    forged = dataclasses.replace(grant, grant_id=grant.grant_id[:16] + bytes(16))
    with pytest.raises(RequestRefusedError) as caught:
        client.redeem_grant(forged)
    assert caught.value.code == "unknown_grant"
    # The genuine grant is untouched by the failed forgery.
    assert client.redeem_grant(grant).level is L.OFFICIAL


def test_grant_expires(fresh_daemon: Callable[..., StandaloneDaemon]) -> None:
    daemon = fresh_daemon(grant_ttl_seconds=0.2)
    with daemon.connect() as client:
        grant = client.authorize_construct(L.OFFICIAL, DIGEST_A)
        deadline = time.monotonic() + 5
        while time.time() < grant.expires_at + 0.05 and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(RequestRefusedError) as caught:
            client.redeem_grant(grant)
        assert caught.value.code in {"grant_expired", "unknown_grant"}
        assert client.health()["counters"]["grants_expired"] >= 1


def test_grant_table_is_bounded(fresh_daemon: Callable[..., StandaloneDaemon]) -> None:
    daemon = fresh_daemon(max_grants=3)
    with daemon.connect() as client:
        for _ in range(3):
            client.authorize_construct(L.OFFICIAL, DIGEST_A)
        with pytest.raises(RequestRefusedError) as caught:
            client.authorize_construct(L.OFFICIAL, DIGEST_A)
        assert caught.value.code == "limit"
        assert client.health()["grants"] == 3


@pytest.mark.parametrize("level", [L.PROTECTED, L.SECRET])
def test_standalone_refuses_high_levels_in_the_daemon(
    raw: RawConnection, level: SecurityLevel
) -> None:
    # A raw request, so no client-side check could be what refuses it.
    reply = raw.call("authorize_construct", {"level": level.rank, "digest": DIGEST_A})
    assert reply.status == "error"
    assert reply.body["code"] == "level_refused"


def test_standalone_refuses_a_derive_floor_above_its_ceiling(client: SidecarClient) -> None:
    parent = _origin(client)
    with pytest.raises(RequestRefusedError) as caught:
        client.derive([parent.frame_id], DIGEST_B, L.SECRET)
    assert caught.value.code == "level_refused"


# --- laundering: an origin frame may not relabel content live at a higher level ----------


def _audit_lines(daemon: StandaloneDaemon) -> list[dict[str, object]]:
    return [json.loads(line) for line in daemon.audit_log_path.read_text().splitlines()]


def test_construct_below_a_live_frame_of_the_same_content_is_refused_and_audited(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(audit_fsync_interval_seconds=0)
    content = secrets.token_bytes(32)
    with daemon.connect() as client:
        sensitive = _origin(client, L.OFFICIAL_SENSITIVE, content)
        for lower in (L.OFFICIAL, L.UNOFFICIAL):
            with pytest.raises(RequestRefusedError) as caught:
                client.authorize_construct(lower, content)
            assert caught.value.code == "downgrade_refused"
        # The rule is about lowering: the same level and other content are still granted.
        assert _origin(client, L.OFFICIAL_SENSITIVE, content).level is L.OFFICIAL_SENSITIVE
        assert _origin(client, L.OFFICIAL).level is L.OFFICIAL
        assert client.verify_seal(sensitive) > 0
        assert client.health()["counters"]["refusals"]["downgrade_refused"] == 2
    refused = [line for line in _audit_lines(daemon) if line.get("code") == "downgrade_refused"]
    assert [line["op"] for line in refused] == ["authorize_construct"] * 2
    assert all("OFFICIAL_SENSITIVE" in str(line["message"]) for line in refused)


def test_construct_above_a_live_frame_of_the_same_content_is_granted(
    client: SidecarClient,
) -> None:
    content = secrets.token_bytes(32)
    _origin(client, L.UNOFFICIAL, content)
    assert _origin(client, L.OFFICIAL_SENSITIVE, content).level is L.OFFICIAL_SENSITIVE


def test_grant_issued_before_the_higher_frame_existed_is_refused_at_redeem(
    client: SidecarClient,
) -> None:
    content = secrets.token_bytes(32)
    low_grant = client.authorize_construct(L.OFFICIAL, content)
    _origin(client, L.OFFICIAL_SENSITIVE, content)
    with pytest.raises(RequestRefusedError) as caught:
        client.redeem_grant(low_grant)
    assert caught.value.code == "downgrade_refused"


def test_construct_is_granted_again_once_every_higher_copy_is_retired(
    client: SidecarClient,
) -> None:
    content = secrets.token_bytes(32)
    copies = [_origin(client, L.OFFICIAL_SENSITIVE, content) for _ in range(2)]
    client.retire([copies[0].frame_id])
    # One copy is still live: still refused.
    with pytest.raises(RequestRefusedError):
        client.authorize_construct(L.OFFICIAL, content)
    client.retire([copies[1].frame_id])
    assert _origin(client, L.OFFICIAL, content).level is L.OFFICIAL


def test_derive_below_a_live_copy_is_allowed_and_audited(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(audit_fsync_interval_seconds=0)
    content = secrets.token_bytes(32)
    with daemon.connect() as client:
        sensitive_parent = _origin(client, L.OFFICIAL_SENSITIVE)
        official_parent = _origin(client, L.OFFICIAL)
        client.derive([sensitive_parent.frame_id], content)
        lower = client.derive([official_parent.frame_id], content)
        assert lower.level is L.OFFICIAL
        client.derive_batch([DeriveRequest((official_parent.frame_id,), content)] * 2)
    derived = [line for line in _audit_lines(daemon) if line["op"] in {"derive", "derive_batch"}]
    assert [line.get("live_at_higher_level") for line in derived] == [
        None,
        "OFFICIAL_SENSITIVE",
        2,
    ]


def test_a_closed_clients_frames_are_retired(daemon: StandaloneDaemon) -> None:
    with daemon.connect() as first:
        certificate = _origin(first, L.OFFICIAL_SENSITIVE)
        assert first.verify_seal(certificate) > 0
    with daemon.connect() as second:
        with pytest.raises(SealError):
            second.verify_seal(certificate)
        # Its content may now become an origin frame at a lower level again.
        assert _origin(second, L.OFFICIAL, certificate.digest).level is L.OFFICIAL


# --- derive --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parents", "floor", "expected"),
    [
        ((L.OFFICIAL,), None, L.OFFICIAL),
        ((L.UNOFFICIAL, L.OFFICIAL_SENSITIVE), None, L.OFFICIAL_SENSITIVE),
        ((L.OFFICIAL_SENSITIVE,), L.UNOFFICIAL, L.OFFICIAL_SENSITIVE),
        ((L.UNOFFICIAL,), L.OFFICIAL, L.OFFICIAL),
        ((L.OFFICIAL, L.UNOFFICIAL), L.OFFICIAL_SENSITIVE, L.OFFICIAL_SENSITIVE),
    ],
)
def test_derive_is_the_join_of_parents_and_floor(
    client: SidecarClient,
    parents: tuple[SecurityLevel, ...],
    floor: SecurityLevel | None,
    expected: SecurityLevel,
) -> None:
    parent_ids = [_origin(client, level).frame_id for level in parents]
    certificate = client.derive(parent_ids, DIGEST_B, floor)
    assert certificate.level is expected
    assert all(certificate.level >= level for level in parents)
    assert client.verify_seal(certificate) > 0


def test_derive_with_a_low_floor_never_lowers(raw: RawConnection) -> None:
    grant = raw.call(
        "authorize_construct",
        {"level": L.OFFICIAL_SENSITIVE.rank, "digest": secrets.token_bytes(32)},
    )
    parent = raw.call("redeem_grant", {"grant_id": grant.body["grant_id"]}).body
    derived = {"parent_ids": [parent["frame_id"]], "digest": secrets.token_bytes(32), "floor": 0}
    reply = raw.call("derive", derived)
    assert reply.status == "ok"
    assert reply.body["level"] == L.OFFICIAL_SENSITIVE.rank


def test_derive_refuses_unknown_and_retired_parents(client: SidecarClient) -> None:
    parent = _origin(client)
    client.retire([parent.frame_id])
    with pytest.raises(RequestRefusedError) as caught:
        client.derive([parent.frame_id], DIGEST_B)
    assert caught.value.code == "unknown_frame"
    invented = client.boot_id.hex() + "-999999999"
    with pytest.raises(RequestRefusedError):
        client.derive([invented], DIGEST_B)


def test_derive_batch_is_all_or_nothing(client: SidecarClient) -> None:
    live = _origin(client)
    retired = _origin(client)
    client.retire([retired.frame_id])
    before = client.health()["live_frames"]
    with pytest.raises(RequestRefusedError):
        client.derive_batch(
            [
                DeriveRequest((live.frame_id,), DIGEST_B),
                DeriveRequest((retired.frame_id,), DIGEST_B),
            ]
        )
    assert client.health()["live_frames"] == before


def test_derive_batch_and_verify_batch(client: SidecarClient) -> None:
    official = _origin(client, L.OFFICIAL)
    sensitive = _origin(client, L.OFFICIAL_SENSITIVE)
    requests = [DeriveRequest((official.frame_id,), bytes([i]) * 32, None) for i in range(10)] + [
        DeriveRequest((official.frame_id, sensitive.frame_id), DIGEST_B, L.UNOFFICIAL)
    ]
    certificates = client.derive_batch(requests)
    assert [c.level for c in certificates] == [L.OFFICIAL] * 10 + [L.OFFICIAL_SENSITIVE]
    assert len({c.frame_id for c in certificates}) == 11
    audit_ids = client.verify_batch(certificates)
    assert len(audit_ids) == 11
    tampered = [*certificates[:5], dataclasses.replace(certificates[5], digest=DIGEST_A)]
    with pytest.raises(SealRejectedError) as caught:
        client.verify_batch(tampered)
    assert caught.value.code == "seal_invalid"


def test_batches_larger_than_max_batch_are_chunked(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(max_batch=4)
    with daemon.connect() as client:
        assert client.max_batch == 4
        parent = _origin(client)
        certificates = client.derive_batch(
            [DeriveRequest((parent.frame_id,), bytes([i]) * 32) for i in range(10)]
        )
        assert len(certificates) == 10
        assert len(client.verify_batch(certificates)) == 10
        client.retire([c.frame_id for c in certificates])
        assert client.health()["live_frames"] == 1


def test_oversized_batch_is_refused_by_the_daemon(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(max_batch=4)
    connection = RawConnection(daemon.socket_path, daemon.session_key_path.read_bytes())
    reply = connection.call("retire", {"frame_ids": ["0" * 32 + "-1"] * 5})
    assert reply.status == "error"
    assert reply.body["code"] == "bad_request"
    assert "frame_ids" in reply.body["message"]
    connection.close()


def test_live_frame_table_is_bounded(fresh_daemon: Callable[..., StandaloneDaemon]) -> None:
    daemon = fresh_daemon(max_live_frames=2)
    with daemon.connect() as client:
        first = _origin(client)
        _origin(client)
        with pytest.raises(RequestRefusedError) as caught:
            client.derive([first.frame_id], DIGEST_B)
        assert caught.value.code == "limit"
        client.retire([first.frame_id])
        assert _origin(client).level is L.OFFICIAL


# --- verify --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"level": L.UNOFFICIAL},
        {"level": L.OFFICIAL_SENSITIVE},
        {"digest": DIGEST_B},
        {"seal": bytes(32)},
        {"frame_id": "0" * 32 + "-1"},
    ],
    ids=["lower-level", "higher-level", "other-digest", "tampered-seal", "other-id"],
)
def test_verify_fails_for_any_mismatch(client: SidecarClient, change: dict[str, object]) -> None:
    certificate = _origin(client)
    with pytest.raises(SealError):
        client.verify_seal(dataclasses.replace(certificate, **change))
    assert client.verify_seal(certificate) > 0


def test_verify_fails_for_a_retired_frame(client: SidecarClient) -> None:
    certificate = _origin(client)
    client.retire([certificate.frame_id])
    with pytest.raises(SealRejectedError) as caught:
        client.verify_seal(certificate)
    assert "not live" in str(caught.value)


def test_stale_level_after_uplift_does_not_verify_as_the_new_frame(client: SidecarClient) -> None:
    original = _origin(client, L.OFFICIAL)
    uplifted = client.derive([original.frame_id], original.digest, L.OFFICIAL_SENSITIVE)
    # The old certificate with the new id, or the new one with the old level: both refused.
    with pytest.raises(SealError):
        client.verify_seal(dataclasses.replace(original, frame_id=uplifted.frame_id))
    with pytest.raises(SealError):
        client.verify_seal(dataclasses.replace(uplifted, level=L.OFFICIAL))


def test_retire_reports_how_many_were_live(raw: RawConnection) -> None:
    grant = raw.call("authorize_construct", {"level": 1, "digest": DIGEST_A})
    frame_id = raw.call("redeem_grant", {"grant_id": grant.body["grant_id"]}).body["frame_id"]
    assert raw.call("retire", {"frame_ids": [frame_id, frame_id]}).body == {"retired": 1}
    assert raw.call("retire", {"frame_ids": [frame_id]}).body == {"retired": 0}


# --- checkpoints and health ----------------------------------------------------------------


def test_checkpoint_mac_verifies_and_detects_changes(client: SidecarClient) -> None:
    record = b'{"run": 1, "chunk": 7}'
    mac = client.checkpoint_mac(record)
    assert len(mac) == 32
    assert client.checkpoint_verify(record, mac) is True
    with pytest.raises(CheckpointMismatchError):
        client.checkpoint_verify(record + b" ", mac)
    with pytest.raises(CheckpointMismatchError):
        client.checkpoint_verify(record, bytes(32))


def test_oversized_checkpoint_record_is_refused(client: SidecarClient) -> None:
    with pytest.raises(AuthorityError):
        client.checkpoint_mac(bytes(300_000))


def test_health_reports_counters(client: SidecarClient) -> None:
    before = client.health()
    with pytest.raises(RequestRefusedError):
        client.derive(["0" * 32 + "-1"], DIGEST_A)
    after = client.health()
    assert after["status"] == "ok"
    assert after["mode"] == "standalone"
    assert after["boot_id"] == client.boot_id.hex()
    assert after["uptime_seconds"] >= before["uptime_seconds"]
    assert after["counters"]["requests"] >= before["counters"]["requests"] + 2
    assert after["counters"]["refusals"].get("unknown_frame", 0) == (
        before["counters"]["refusals"].get("unknown_frame", 0) + 1
    )


def test_unknown_operation_is_refused(raw: RawConnection) -> None:
    reply = raw.call("lower_level", {"frame_id": "0" * 32 + "-1"})
    assert reply.status == "error"
    assert reply.body["code"] == "unknown_op"
    # The connection stays usable after an authenticated refusal.
    assert raw.call("health", {}).status == "ok"


def test_audit_ids_increase_monotonically(client: SidecarClient) -> None:
    ids = [client.authorize_construct(L.OFFICIAL, DIGEST_A).audit_id for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_audit_log_has_one_line_per_request_without_secrets(
    fresh_daemon: Callable[..., StandaloneDaemon],
) -> None:
    daemon = fresh_daemon(audit_fsync_interval_seconds=0)
    with daemon.connect() as client:
        certificate = _origin(client)
        client.verify_seal(certificate)
        client.derive_batch([DeriveRequest((certificate.frame_id,), DIGEST_B)] * 3)
    lines = [json.loads(line) for line in daemon.audit_log_path.read_text().splitlines()]
    ops = [line["op"] for line in lines]
    assert ops[-6:] == [
        "health",
        "authorize_construct",
        "redeem_grant",
        "verify_seal",
        "derive_batch",
        "retire",
    ]
    assert lines[-2]["count"] == 3
    # Closing the client retired the four frames it had made.
    assert lines[-1]["retired"] == 4
    text = daemon.audit_log_path.read_text()
    assert certificate.seal.hex() not in text
    assert daemon.session_key_path.read_bytes().hex() not in text
    assert oct(daemon.audit_log_path.stat().st_mode & 0o777) == "0o600"
