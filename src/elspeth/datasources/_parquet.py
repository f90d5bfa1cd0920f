"""The Parquet reader: whole file or record batches; the classification metadata is checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from elspeth.datasources._config import ParquetDatasourceConfig
from elspeth.datasources._errors import DatasourceFormatError
from elspeth.datasources._files import open_source_file
from elspeth.datasources._marking import parse_parquet_marking
from elspeth.datasources._schema import RawChunk
from elspeth.security import LevelParseError, SecurityLevel


def read_parquet(
    config: ParquetDatasourceConfig,
    source: str,
    chunk_rows: int | None,
    check_marking: Callable[[SecurityLevel | None], None],
) -> Iterator[RawChunk]:
    with open_source_file(config.path, source) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError) as error:
            raise DatasourceFormatError(
                source, f"is not a readable Parquet file ({error})"
            ) from None
        try:
            check_marking(parse_parquet_marking(parquet.schema_arrow.metadata))
        except LevelParseError:
            raise DatasourceFormatError(
                source, "its elspeth.classification metadata names no known level"
            ) from None
        if parquet.metadata.num_rows == 0:
            raise DatasourceFormatError(source, "has no rows")
        first_row = 0
        try:
            for table in _tables(parquet, chunk_rows):
                yield RawChunk(_frame(table, first_row), first_row, None, from_text=False)
                first_row += table.num_rows
        except (pa.ArrowException, OSError) as error:
            raise DatasourceFormatError(source, f"cannot be read as Parquet ({error})") from None


def _tables(parquet: Any, chunk_rows: int | None) -> Iterator[Any]:
    if chunk_rows is None:
        yield parquet.read()
        return
    schema = parquet.schema_arrow
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield pa.Table.from_batches([batch], schema=schema)


def _frame(table: Any, first_row: int) -> pd.DataFrame:
    data: pd.DataFrame = table.to_pandas()
    if isinstance(data.index, pd.RangeIndex):
        data.index = pd.RangeIndex(first_row, first_row + len(data))
    return data
