"""The stream reader and the scratch count, one function at a time, without worker processes."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elspeth.orchestrator._arrow import allocate, frame_to_ipc, ipc_to_table
from elspeth.orchestrator._runtime._ipc_stream import (
    CheckedStream,
    StreamExpectation,
    StreamRefusedError,
    agrees,
    read_stream,
)
from elspeth.orchestrator._wire import ChannelClosedError
from elspeth.orchestrator.reaper._scratch_watch import ENTRY_BYTES, scratch_usage

ANY_ROWS = StreamExpectation(2**62, "any reply")
SAMPLE = pd.DataFrame(
    {
        "n": range(100),
        "text": [f"row {i}" for i in range(100)],
        "kind": pd.Categorical(["a", "b"] * 50),
        "none": [None] * 100,
    }
)


class Channel:
    """Bytes as the worker would send them, and how many of them the reader took."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.taken = 0

    def read_into(self, view: memoryview) -> None:
        end = self.taken + view.nbytes
        if end > len(self.data):
            raise ChannelClosedError("the stream ended early")
        view[:] = self.data[self.taken : end]
        self.taken = end


def read(data: bytes, expectation: StreamExpectation = ANY_ROWS) -> CheckedStream:
    return read_stream(Channel(data).read_into, allocate(len(data)), expectation)


def stream_of(table: pa.Table, **options: object) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(**options)) as out:
        out.write_table(table)
    return bytes(sink.getvalue())


def test_a_stream_the_orchestrator_would_send_passes_and_decodes_as_announced() -> None:
    data = bytes(frame_to_ipc(SAMPLE))
    stream = read(data, StreamExpectation(100, "a column update of a 100-row frame"))
    assert stream.rows == 100
    assert agrees(stream, ipc_to_table(stream.payload))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\0" * 64, "lacks the continuation marker"),
        (b"\xff\xff\xff\xff\x00\x00\x00\x00", "does not begin with a schema message"),
        (b"\xff\xff\xff\xff\x00\x01\x00\x00" + b"\0" * 16, "runs past the end of the payload"),
        (stream_of(pa.table({"a": [1]}), compression="zstd"), "bodies are compressed"),
        (stream_of(pa.table({"s": pa.array([{"x": 1}])})), "schema cannot be sealed"),
        (stream_of(pa.table([[1], [2]], names=["twice", "twice"])), r"\['twice'\] appear"),
        (stream_of(pa.table({"a": [1]})) + b"\0", "bytes follow the end of the stream"),
    ],
)
def test_wrong_streams_are_refused_from_their_headers(data: bytes, reason: str) -> None:
    with pytest.raises(StreamRefusedError, match=reason):
        read(data)


def test_rows_past_the_expectation_are_refused_before_the_body_is_taken() -> None:
    data = stream_of(pa.table({"n": range(1_000_000)}))
    channel = Channel(data)
    with pytest.raises(StreamRefusedError, match="at least 1000000 rows; a 3-row frame has at"):
        read_stream(channel.read_into, allocate(len(data)), StreamExpectation(3, "a 3-row frame"))
    assert channel.taken < 4096 < len(data)


def test_a_null_dictionary_with_more_entries_than_bytes_is_refused() -> None:
    dictionary = pa.DictionaryArray.from_arrays(pa.array([0], pa.int8()), pa.nulls(10**6))
    with pytest.raises(StreamRefusedError, match="more entries than the stream has bytes"):
        read(stream_of(pa.table({"d": dictionary})))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=6))
def test_any_damage_is_refused_or_decodes(damage: list[tuple[int, int]]) -> None:
    """Damaged headers raise nothing but a refusal; what passes is decoded by pyarrow, whose
    table the runtime then holds against the headers (``agrees``)."""
    data = bytearray(frame_to_ipc(SAMPLE))
    for position, value in damage:
        data[position % len(data)] = value
    try:
        stream = read(bytes(data))
    except (StreamRefusedError, ChannelClosedError):
        return
    try:
        table = ipc_to_table(stream.payload)
    except ValueError:
        return
    assert isinstance(agrees(stream, table), bool)


def test_scratch_usage_counts_sizes_blocks_and_entries(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"x" * 10_000)
    (tmp_path / "empty").touch()
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    with open(nested / "sparse", "wb") as sparse:
        sparse.truncate(5 * 1024**2)  # no blocks, but the apparent size counts
    os.symlink("/usr", tmp_path / "link")  # counted as itself, never followed
    used = scratch_usage(str(tmp_path), 2**40)
    data_blocks = os.lstat(tmp_path / "data.bin").st_blocks * 512
    # data.bin, the sparse file, and four entries of at least a block: empty, a, b, link.
    assert used == max(10_000, data_blocks) + 5 * 1024**2 + 4 * ENTRY_BYTES
    assert scratch_usage(str(tmp_path), 1) <= used  # stops once past the limit
    assert scratch_usage(str(tmp_path / "gone"), 1) == 0
