"""Fuzzing both sides' decoders: any bytes give a checked message or a ProtocolError, only."""

from __future__ import annotations

import contextlib
import os
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.orchestrator import _wire
from elspeth.orchestrator.worker_process._channel import WorkerChannel

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
    names = sorted(
        name
        for table in (_wire.WORKER_BOUND, _wire.ORCHESTRATOR_BOUND)
        if op in table
        for name in table[op].fields
    )
    fields = draw(st.dictionaries(st.sampled_from([*names, "extra"]), values, max_size=6))
    packed: bytes = msgpack.packb({"op": op, **fields}, use_bin_type=True)
    return packed


@pytest.mark.parametrize("table", TABLES.values(), ids=TABLES)
# A per-test list replaces the profile's (tests/conftest.py), so too_slow is named again.
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=st.one_of(st.binary(max_size=200), near_messages()))
def test_decode_accepts_only_what_the_table_says(table, body: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        message = _wire.decode(body, table)
    except _wire.ProtocolError:
        return
    assert message.op in table
    assert set(message.fields) == set(table[message.op].fields)
    assert all(check(message[name]) for name, check in table[message.op].fields.items())


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


class _StreamReader:
    """Reads a byte string the way a channel reads its socket: exactly, or ChannelClosedError."""

    def __init__(self, stream: bytes) -> None:
        self.stream = memoryview(stream)

    def __call__(self, view: memoryview) -> None:
        if view.nbytes > len(self.stream):
            raise _wire.ChannelClosedError("end of stream")
        view[:] = self.stream[: view.nbytes]
        self.stream = self.stream[view.nbytes :]


class _RecordingAllocator:
    """Test double for the allocator: records every size it was asked for."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, size: int) -> memoryview:
        self.sizes.append(size)
        return memoryview(bytearray(size))


def read_stream(stream: bytes, max_payload: int, allocate: _wire.Allocate) -> list[_wire.Message]:
    reader, messages = _StreamReader(stream), []
    while reader.stream:
        messages.append(
            _wire.read_message(
                reader,
                _wire.ORCHESTRATOR_BOUND,
                max_message=_wire.MIN_MAX_MESSAGE_BYTES,
                max_payload=max_payload,
                allocate=allocate,
                conversation=None,
            )
        )
    return messages


def proxy_frames(payload: bytes) -> bytes:
    header, raw = _wire.frames_with_payload(
        "proxy", payload, seq=1, method="get_view", handle="h", args={}
    )
    return header + bytes(raw)


@given(payloads=st.lists(st.binary(max_size=3000), min_size=1, max_size=4))
def test_payloads_follow_their_message_raw_and_round_trip(payloads: list[bytes]) -> None:
    stream = b"".join(proxy_frames(p) for p in payloads) + _wire.encode(
        "error", kind="k", message="m"
    )
    allocate = _RecordingAllocator()
    *carriers, last = read_stream(stream, 3000, allocate)
    assert [bytes(m.payload) for m in carriers] == payloads
    assert [m["size"] for m in carriers] == allocate.sizes == [len(p) for p in payloads]
    assert last.op == "error"
    assert not last.payload


@settings(max_examples=300)
@given(
    stream=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda p, cut: proxy_frames(p)[:cut], st.binary(max_size=200), st.integers(0, 300)
        ),
        st.builds(
            lambda size, tail: (
                _wire.encode("proxy", seq=1, method="m", handle="h", args={}, size=size) + tail
            ),
            st.integers(0, 2**63 - 1),
            st.binary(max_size=100),
        ),
    ),
    max_payload=st.integers(0, 150),
)
def test_no_stream_makes_the_reader_allocate_beyond_the_payload_cap(
    stream: bytes, max_payload: int
) -> None:
    allocate = _RecordingAllocator()
    with contextlib.suppress(_wire.ProtocolError):
        read_stream(stream, max_payload, allocate)
    assert all(size <= max_payload for size in allocate.sizes)


def test_a_payload_above_the_cap_or_cut_short_is_refused() -> None:
    allocate = _RecordingAllocator()
    with pytest.raises(_wire.OversizedMessageError, match="payload of 100 bytes announced"):
        read_stream(proxy_frames(b"x" * 100), 99, allocate)
    assert allocate.sizes == []
    with pytest.raises(_wire.ChannelClosedError):
        read_stream(proxy_frames(b"x" * 100)[:-1], 100, allocate)


def drain(channel: WorkerChannel) -> None:
    while True:
        channel.receive()
