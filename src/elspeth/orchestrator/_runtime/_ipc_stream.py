"""A worker's Arrow IPC stream, read message by message and judged before any body arrives.

A stream is a schema message, then dictionary and record batch messages: each is a small
flatbuffer (its metadata) followed by its body, and the metadata says how long the body is and,
for a record batch, how many rows it holds. Every byte comes from the worker, so the orchestrator
reads each message's metadata first and refuses a stream whose schema it could not seal, whose
rows exceed what the reply may hold, or whose bodies are compressed (a small body could then
decode to any size), without reading the body: the payload's memory, allocated but untouched,
is not even paged in. pyarrow decodes only a stream that passed, and must agree with its headers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from elspeth.orchestrator._arrow import table_to_frame
from elspeth.security import DigestError, canonical_digest_table

if TYPE_CHECKING:
    import pyarrow as pa

    from elspeth.orchestrator._wire import ReadInto

_CONTINUATION: Final = 0xFFFFFFFF
_PREFIX: Final = struct.Struct("<Ii")
"""Every message starts with the continuation marker and its metadata's length."""

# Message.fbs: the header union's type tags, and the field numbers read below.
_SCHEMA: Final = 1
_DICTIONARY_BATCH: Final = 2
_RECORD_BATCH: Final = 3
_MESSAGE_HEADER_TYPE, _MESSAGE_HEADER, _MESSAGE_BODY_LENGTH = 1, 2, 3
_BATCH_LENGTH, _BATCH_COMPRESSION = 0, 3
_DICTIONARY_DATA = 1


class StreamRefusedError(ValueError):
    """The stream's headers show it is not what the reply may carry; its body was not read."""


@dataclass(frozen=True, slots=True)
class StreamExpectation:
    """What one reply's stream may hold: at most ``max_rows`` rows, which ``what`` explains."""

    max_rows: int
    what: str


@dataclass(frozen=True, slots=True)
class CheckedStream:
    """A whole payload whose headers passed, with the schema and row count they announced."""

    payload: memoryview
    schema: pa.Schema
    rows: int


def read_stream(
    read_into: ReadInto, payload: memoryview, expectation: StreamExpectation
) -> CheckedStream:
    """Fill ``payload`` from the channel one message at a time, checking every message's metadata
    before its body; :class:`StreamRefusedError` leaves the rest of the payload unread."""
    import pyarrow as pa

    reader = _Reader(read_into, payload)
    first = reader.next_message()
    if first is None or first.header_type != _SCHEMA or first.body_length:
        raise StreamRefusedError("the stream does not begin with a schema message")
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(payload[: reader.filled]))
    except (pa.ArrowException, OSError) as error:
        raise StreamRefusedError(
            f"its schema message is malformed ({type(error).__name__})"
        ) from None
    check_schema(schema)
    rows = 0
    while reader.filled < payload.nbytes:
        message = reader.next_message()
        if message is None:
            break
        if message.header_type == _RECORD_BATCH:
            rows += _batch_length(message.header)
            if rows > expectation.max_rows:
                raise StreamRefusedError(
                    f"it announces at least {rows} rows; {expectation.what} has at most "
                    f"{expectation.max_rows}"
                )
        elif message.header_type == _DICTIONARY_BATCH:
            data = message.header.table(_DICTIONARY_DATA)
            if data is None:
                raise StreamRefusedError("a dictionary batch has no data")
            # Entries of a null dictionary take no bytes: bound them by what an honest one costs.
            if _batch_length(data) > payload.nbytes:
                raise StreamRefusedError(
                    "a dictionary announces more entries than the stream has bytes"
                )
        else:
            raise StreamRefusedError(
                f"unexpected message (header type {message.header_type}) after the schema"
            )
        reader.take(message.body_length)
    if reader.filled != payload.nbytes:
        raise StreamRefusedError("bytes follow the end of the stream")
    return CheckedStream(payload, schema, rows)


def check_schema(schema: pa.Schema) -> None:
    """Refuse a schema the orchestrator could not use: an empty table of it must convert to a
    frame (its pandas metadata describes it) and have a digest (the seal's own type rules), and
    no column name may appear twice (no pandas frame converts to that)."""
    empty = schema.empty_table()
    try:
        table_to_frame(empty)
    except ValueError as error:
        raise StreamRefusedError(str(error)) from None
    names = empty.column_names
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise StreamRefusedError(f"its columns {twice[:8]} appear more than once")
    try:
        canonical_digest_table(empty)
    except DigestError as error:
        raise StreamRefusedError(f"its schema cannot be sealed: {error}") from None


def agrees(stream: CheckedStream, table: pa.Table) -> bool:
    """Whether pyarrow decoded what the headers announced (a check of this module's reading)."""
    return bool(
        table.num_rows == stream.rows and table.schema.equals(stream.schema, check_metadata=True)
    )


class _Message(NamedTuple):
    header_type: int
    body_length: int
    header: _Table


class _Reader:
    """Reads a payload's messages into it, in order; never past its end."""

    def __init__(self, read_into: ReadInto, payload: memoryview) -> None:
        self._read_into = read_into
        self._payload = payload
        self.filled = 0

    def take(self, count: int) -> memoryview:
        start, end = self.filled, self.filled + count
        if count < 0 or end > self._payload.nbytes:
            raise StreamRefusedError("a message runs past the end of the payload")
        self._read_into(self._payload[start:end])
        self.filled = end
        return self._payload[start:end]

    def next_message(self) -> _Message | None:
        """The next message's metadata, its body still unread; None at the end-of-stream marker."""
        continuation, length = _PREFIX.unpack(self.take(_PREFIX.size))
        if continuation != _CONTINUATION:
            raise StreamRefusedError("a message lacks the continuation marker")
        if length == 0:
            return None
        metadata = bytes(self.take(length))
        message = _Table.root(metadata)
        header = message.table(_MESSAGE_HEADER)
        body_length = message.scalar(_MESSAGE_BODY_LENGTH, "<q")
        if header is None or body_length < 0:
            raise StreamRefusedError("a message has no header or a negative body length")
        return _Message(message.scalar(_MESSAGE_HEADER_TYPE, "<B"), body_length, header)


def _batch_length(batch: _Table) -> int:
    if batch.table(_BATCH_COMPRESSION) is not None:
        raise StreamRefusedError("its bodies are compressed; the worker channel carries them as is")
    length = batch.scalar(_BATCH_LENGTH, "<q")
    if length < 0:
        raise StreamRefusedError("a batch announces a negative length")
    return length


class _Table:
    """One flatbuffer table: just what reading a few scalar and table fields needs, every offset
    checked against the metadata's bounds."""

    def __init__(self, data: bytes, position: int) -> None:
        self._data = data
        self._position = position
        self._vtable = position - _unpack("<i", data, position)
        self._vtable_size = _unpack("<H", data, self._vtable)

    @classmethod
    def root(cls, data: bytes) -> _Table:
        return cls(data, _unpack("<I", data, 0))

    def scalar(self, field: int, form: str) -> int:
        at = self._field(field)
        return 0 if at is None else _unpack(form, self._data, at)

    def table(self, field: int) -> _Table | None:
        at = self._field(field)
        return None if at is None else _Table(self._data, at + _unpack("<I", self._data, at))

    def _field(self, field: int) -> int | None:
        entry = 4 + 2 * field
        if entry + 2 > self._vtable_size:
            return None
        offset = _unpack("<H", self._data, self._vtable + entry)
        return self._position + offset if offset else None


def _unpack(form: str, data: bytes, at: int) -> int:
    if not 0 <= at <= len(data) - struct.calcsize(form):
        raise StreamRefusedError("a message's metadata points outside itself")
    value: int = struct.unpack_from(form, data, at)[0]
    return value
