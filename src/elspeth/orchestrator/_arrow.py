"""DataFrame <-> Arrow IPC stream: how views and new data cross the worker channel.

Each side copies a payload once: the sender serialises into Arrow memory and writes that memory
to the socket as it is; the receiver reads into memory from Arrow's pool (which reuses freed pages,
so a large view does not page-fault its way in every time) and decodes without copying. The
decoded frame keeps that memory alive. Streams are uncompressed: on a local socket, compressing
costs more than the bytes it saves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from elspeth.orchestrator._wire import Buffer


def frame_to_ipc(data: pd.DataFrame) -> memoryview:
    """Serialise ``data`` (index included when it is not a plain range) as an Arrow IPC stream."""
    import pyarrow as pa

    table = pa.Table.from_pandas(data, preserve_index=None)
    # Measuring first and writing into a buffer of the exact size avoids growing (and copying)
    # the output buffer; measuring copies nothing.
    measure = pa.MockOutputStream()
    _write_stream(measure, table)
    buffer = pa.allocate_buffer(measure.size())
    _write_stream(pa.FixedSizeBufferWriter(buffer), table)
    return memoryview(buffer).cast("B")


def _write_stream(sink: pa.NativeFile, table: pa.Table) -> None:
    import pyarrow as pa

    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def allocate(size: int) -> memoryview:
    """``size`` writable bytes from Arrow's memory pool, to receive a payload into."""
    import pyarrow as pa

    return memoryview(pa.allocate_buffer(size)).cast("B")


def ipc_to_table(payload: Buffer) -> pa.Table:
    """Decode an Arrow IPC stream without copying ``payload``.

    The stream is fully validated (offsets within their buffers, valid UTF-8, ...): it may come
    from a hostile worker, and the table points straight into ``payload``. Malformed bytes raise
    ``ValueError``.
    """
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
        table.validate(full=True)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"not a valid Arrow IPC stream: {type(error).__name__}") from None
    return table


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as a DataFrame (string columns still point into its buffers). Its pandas
    metadata comes from the worker too: metadata that does not describe the table raises
    ``ValueError``, whichever way pandas or pyarrow trip over it."""
    import pyarrow as pa

    try:
        frame: pd.DataFrame = table.to_pandas()
    except (pa.ArrowException, KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(
            f"not a valid Arrow IPC stream: its pandas metadata does not describe it "
            f"({type(error).__name__})"
        ) from None
    return frame


def ipc_to_frame(payload: Buffer) -> pd.DataFrame:
    """:func:`ipc_to_table`, as a DataFrame (string columns still point into ``payload``)."""
    return table_to_frame(ipc_to_table(payload))
