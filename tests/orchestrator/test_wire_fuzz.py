"""Fuzzing both sides' decoders: any bytes give a checked message or a ProtocolError, only."""

from __future__ import annotations

import os
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.orchestrator import _wire
from elspeth.orchestrator._worker_channel import WorkerChannel

TABLES = {"worker side": _wire.WORKER_BOUND, "orchestrator side": _wire.ORCHESTRATOR_BOUND}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
ops = st.sampled_from(sorted({*_wire.WORKER_BOUND, *_wire.ORCHESTRATOR_BOUND, "nope", ""}))


@st.composite
def near_messages(draw: st.DrawFn) -> bytes:
    """Maps that look like real messages: a real op, some real field names, any values."""
    op = draw(ops)
    names = sorted({*_wire.WORKER_BOUND.get(op, {}), *_wire.ORCHESTRATOR_BOUND.get(op, {})})
    fields = draw(st.dictionaries(st.sampled_from([*names, "extra"]), values, max_size=6))
    packed: bytes = msgpack.packb({"op": op, **fields}, use_bin_type=True)
    return packed


@pytest.mark.parametrize("table", TABLES.values(), ids=TABLES)
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200), near_messages()))
def test_decode_accepts_only_what_the_table_says(table, body: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        message = _wire.decode(body, table)
    except _wire.ProtocolError:
        return
    assert message.op in table
    assert set(message.fields) == set(table[message.op])
    assert all(check(message[name]) for name, check in table[message.op].items())


@settings(max_examples=200)
@given(stream=st.binary(max_size=300), limit=st.integers(_wire.MIN_MAX_MESSAGE_BYTES, 2**20))
def test_the_worker_channel_reads_any_stream_without_crashing(stream: bytes, limit: int) -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, stream)
        os.close(write_end)
        channel = WorkerChannel(read_end, -1, limit)
        with pytest.raises(_wire.ProtocolError):
            drain(channel)
    finally:
        os.close(read_end)


@given(length=st.integers(0, 2**32 - 1), limit=st.integers(_wire.MIN_MAX_MESSAGE_BYTES, 2**31))
def test_announced_lengths_above_the_limit_are_refused(length: int, limit: int) -> None:
    header = struct.pack(">I", length)
    if length > limit:
        with pytest.raises(_wire.OversizedMessageError):
            _wire.body_length(header, limit)
    else:
        assert _wire.body_length(header, limit) == length


@given(payload=st.binary(max_size=5000), limit=st.integers(1100, 3000))
def test_payloads_round_trip_through_parts(payload: bytes, limit: int) -> None:
    frames = list(
        _wire.encode_with_payload(
            "proxy_reply", payload, limit, seq=1, ok=True, value=None, error=None
        )
    )
    assert all(len(frame) - 4 <= limit for frame in frames)
    messages = iter(_wire.decode(frame[4:], _wire.WORKER_BOUND) for frame in frames)
    header = next(messages)
    assert _wire.collect_payload(header, lambda: next(messages), len(payload)) == payload


def test_a_payload_larger_than_announced_or_allowed_is_refused() -> None:
    frames = list(
        _wire.encode_with_payload(
            "proxy_reply", b"x" * 100, 2000, seq=1, ok=True, value=None, error=None
        )
    )
    header = _wire.decode(frames[0][4:], _wire.WORKER_BOUND)
    with pytest.raises(_wire.OversizedMessageError):
        _wire.collect_payload(header, lambda: _wire.decode(frames[1][4:], _wire.WORKER_BOUND), 99)
    lying = _wire.decode(
        _wire.encode("proxy_reply", seq=1, ok=True, value=None, error=None, parts=1, size=10)[4:],
        _wire.WORKER_BOUND,
    )
    with pytest.raises(_wire.ProtocolError, match=r"100 bytes, 10 announced|exceed"):
        _wire.collect_payload(lying, lambda: _wire.decode(frames[1][4:], _wire.WORKER_BOUND), 1000)


def drain(channel: WorkerChannel) -> None:
    while True:
        channel.receive()
