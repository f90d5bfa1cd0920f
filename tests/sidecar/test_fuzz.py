"""Fuzzing the decoder and the request handler: nothing escapes, nothing crashes."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.sidecar import StandaloneDaemon, _schema
from elspeth.sidecar._daemon._engine import SealEngine
from elspeth.sidecar._daemon._policy import _DERIVE_ITEM, OPERATIONS
from elspeth.sidecar._daemon._session import Peer, Session
from elspeth.sidecar._protocol import MacKey, ProtocolViolation, decode, encode_request, frame
from elspeth.sidecar._schema import ArgumentError, Limits
from tests.sidecar.conftest import RawConnection

KEY = bytes(range(32))

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True)
    | st.binary(max_size=40)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)

field_names = st.sampled_from(
    [
        "level",
        "digest",
        "grant_id",
        "parent_ids",
        "floor",
        "items",
        "frame_id",
        "seal",
        "frame_ids",
        "record",
        "mac",
        "other",
    ]
)
args_maps = st.dictionaries(field_names, cbor_values, max_size=5)


LIMITS = Limits(max_batch=16, max_record_bytes=1024)
VALID_FRAME_ID = "0123456789abcdef" * 2 + "-42"
VALID_DIGEST = b"\x33" * 32

# Values close to valid ones, so the batch fast path meets the edge of every rule.
frame_ids = (
    st.sampled_from([VALID_FRAME_ID, "A" * 32 + "-1", "a" * 32 + "-0", "a" * 32 + "-1\n", ""])
    | cbor_values
)
digests = st.sampled_from([VALID_DIGEST, b"\x33" * 31, b"\x33" * 33]) | cbor_values
ranks = st.sampled_from([0, 1, 4, 5, -1, True, False, 1.0]) | cbor_values
derive_items = st.fixed_dictionaries(
    {"parent_ids": st.lists(frame_ids, max_size=3) | cbor_values, "digest": digests},
    optional={"floor": st.none() | ranks, "other": cbor_values},
)
certificate_items = st.fixed_dictionaries(
    {"frame_id": frame_ids, "level": ranks, "digest": digests, "seal": digests},
    optional={"other": cbor_values},
)


def _checked_one_by_one(validator: _schema.Validator, items: list[Any]) -> list[Any] | None:
    try:
        return [validator.check(item, LIMITS) for item in items]
    except ArgumentError:
        return None


@given(
    st.one_of(
        st.tuples(st.just(_DERIVE_ITEM), st.lists(derive_items, max_size=6)),
        st.tuples(st.just(_schema.certificate), st.lists(certificate_items, max_size=6)),
    )
)
@settings(max_examples=300)
def test_batch_fast_path_accepts_only_what_the_item_check_accepts_unchanged(
    case: tuple[_schema.Validator, list[Any]],
) -> None:
    validator, items = case
    if validator.accepts_all(items, LIMITS):
        assert _checked_one_by_one(validator, items) == items


def test_batch_fast_path_takes_well_formed_batches() -> None:
    derive = {"parent_ids": [VALID_FRAME_ID], "digest": VALID_DIGEST, "floor": None}
    certificate = {
        "frame_id": VALID_FRAME_ID,
        "level": 1,
        "digest": VALID_DIGEST,
        "seal": VALID_DIGEST,
    }
    assert _DERIVE_ITEM.accepts_all([derive, {**derive, "floor": 4}], LIMITS)
    assert _schema.certificate.accepts_all([certificate] * 3, LIMITS)
    # Not sure is not a refusal: a missing optional key goes to the item check, which fills it.
    assert not _DERIVE_ITEM.accepts_all(
        [{"parent_ids": [VALID_FRAME_ID], "digest": VALID_DIGEST}], LIMITS
    )
    batch = OPERATIONS["derive_batch"].arguments
    assert batch({"items": [{"parent_ids": [VALID_FRAME_ID], "digest": VALID_DIGEST}]}, LIMITS) == {
        "items": [derive]
    }
    with pytest.raises(ArgumentError, match=r"^items\[1\]\.floor: level rank 5 is not one"):
        batch({"items": [derive, {**derive, "floor": 5}]}, LIMITS)


def _session(engine: SealEngine) -> Session:
    return Session(
        engine,
        MacKey(KEY),
        Limits(max_batch=16, max_record_bytes=1024),
        max_frame_bytes=65536,
        connection_id=1,
        peer=Peer(1, 1, 1),
    )


def _engine() -> SealEngine:
    return SealEngine(
        checkpoint_key=bytearray(KEY),
        mode="standalone",
        grant_ttl_seconds=60,
        max_grants=100,
        max_live_frames=100,
    )


@given(st.binary(max_size=512))
@settings(max_examples=400)
def test_decoder_returns_or_raises_a_protocol_violation(data: bytes) -> None:
    with contextlib.suppress(ProtocolViolation):
        decode(data)


@given(st.binary(max_size=512))
@settings(max_examples=400)
def test_handler_answers_arbitrary_bytes_without_raising(data: bytes) -> None:
    engine = _engine()
    outcome = _session(engine).handle(data)
    assert outcome.reply[:4]
    assert outcome.audit.status in {"ok", "error"}
    assert not engine.counters.refusals.get("internal")


@given(st.sampled_from(sorted(OPERATIONS)), args_maps)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_authenticated_arbitrary_arguments_never_crash_a_handler(
    op: str, args: dict[str, Any]
) -> None:
    # Authentic requests (valid MAC, right sequence) with arbitrary arguments reach the policy
    # table and the handlers: every outcome is an answer, never an internal error.
    engine = _engine()
    session = _session(engine)
    outcome = session.handle(encode_request(MacKey(KEY), session.nonce, 1, op, args))
    assert outcome.audit.status in {"ok", "error"}
    assert not engine.counters.refusals.get("internal"), outcome.audit


@pytest.mark.integration
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=5))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_live_daemon_survives_arbitrary_frames(
    daemon: StandaloneDaemon, session_key: bytes, bodies: list[bytes]
) -> None:
    connection = RawConnection(daemon.socket_path, session_key)
    try:
        connection.send(b"".join(frame(body) for body in bodies))
        connection.reply()
    except (ConnectionError, OSError):
        pass
    finally:
        connection.close()
    with daemon.connect(timeout=5, op_timeout=5) as client:
        health = client.health()
    assert health["status"] == "ok"
    assert not health["counters"]["refusals"].get("internal")


@pytest.mark.integration
@given(st.sampled_from(sorted(OPERATIONS)), args_maps)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_live_daemon_answers_authenticated_arbitrary_arguments(
    raw_session: RawConnection, op: str, args: dict[str, Any]
) -> None:
    reply = raw_session.call(op, args)
    assert reply.status in {"ok", "error"}
    if reply.status == "error":
        assert reply.body["code"] != "internal"


@pytest.fixture(scope="module")
def raw_session(daemon: StandaloneDaemon) -> Any:
    connection = RawConnection(daemon.socket_path, daemon.session_key_path.read_bytes())
    yield connection
    connection.close()
