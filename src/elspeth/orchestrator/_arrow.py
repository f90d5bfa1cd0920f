"""DataFrame <-> Arrow IPC stream bytes: how views and new data cross the worker channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def frame_to_ipc(data: pd.DataFrame) -> bytes:
    """Serialise ``data`` (index included when it is not a plain range) as an Arrow IPC stream."""
    import pyarrow as pa

    table = pa.Table.from_pandas(data, preserve_index=None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def ipc_to_frame(payload: bytes) -> pd.DataFrame:
    """Decode an Arrow IPC stream into a DataFrame; malformed bytes raise ``ValueError``."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"not a valid Arrow IPC stream: {type(error).__name__}") from None
    frame: pd.DataFrame = table.to_pandas()
    return frame
