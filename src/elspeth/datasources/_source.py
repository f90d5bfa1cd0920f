"""The datasource: reads its input and mints origin frames through the seal authority."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from elspeth.datasources._config import (
    FILE_SUFFIXES,
    CsvDatasourceConfig,
    DatasourceConfig,
    JsonlDatasourceConfig,
    ParquetDatasourceConfig,
    SqlDatasourceConfig,
)
from elspeth.datasources._csv import read_csv
from elspeth.datasources._errors import (
    DatasourceSchemaError,
    MarkingError,
    UnsupportedSourceError,
)
from elspeth.datasources._files import open_source_file
from elspeth.datasources._jsonl import read_jsonl
from elspeth.datasources._parquet import read_parquet
from elspeth.datasources._schema import RawChunk, conform
from elspeth.datasources._sql import create_engine, masked_url, read_sql
from elspeth.security import DigestError, SealAuthority, SecureDataFrame, SecurityLevel

_Reader = Callable[
    [Any, str, int | None, Callable[[SecurityLevel | None], None]], Iterator[RawChunk]
]

_READERS: Final[Mapping[type[Any], _Reader]] = {
    CsvDatasourceConfig: read_csv,
    JsonlDatasourceConfig: read_jsonl,
    ParquetDatasourceConfig: read_parquet,
    SqlDatasourceConfig: read_sql,
}


class Datasource:
    """A configured datasource. Trusted code: it runs in the orchestrator, never in a worker.

    :meth:`load` returns the whole input as one origin frame; :meth:`load_chunks` streams it as
    origin frames of at most ``rows`` rows, each minted through its own one-shot grant at the
    declared classification, with a row index that continues across chunks.
    """

    def __init__(self, config: DatasourceConfig) -> None:
        self.config = config
        self._reader = _READERS[type(config)]

    @property
    def source(self) -> str:
        """How messages name this source: the file path, or the URL with its password masked."""
        if isinstance(self.config, SqlDatasourceConfig):
            return f"SQL source {masked_url(self.config.url.get_secret_value())}"
        return str(self.config.path)

    @property
    def classification(self) -> SecurityLevel:
        return self.config.classification

    def preflight(self) -> None:
        """Cheap checks before a run reads anything: the file opens, the SQL driver loads."""
        if isinstance(self.config, SqlDatasourceConfig):
            create_engine(self.config, self.source).dispose()
        else:
            open_source_file(self.config.path, self.source).close()

    def load(self, authority: SealAuthority) -> SecureDataFrame:
        """The whole input as one origin frame at the declared classification."""
        (frame,) = self._frames(authority, None)
        return frame

    def load_chunks(self, authority: SealAuthority, rows: int) -> Iterator[SecureDataFrame]:
        """The input as origin frames of at most ``rows`` rows, read lazily.

        A bad row fails when its chunk is reached, after the earlier chunks were yielded.
        """
        if rows < 1:
            raise ValueError(f"chunk size must be at least 1 row, not {rows}")
        return self._frames(authority, rows)

    def _frames(self, authority: SealAuthority, rows: int | None) -> Iterator[SecureDataFrame]:
        config = self.config
        for chunk in self._reader(config, self.source, rows, self._check_marking):
            data = conform(chunk, config.columns, config.extra_columns, self.source)
            try:
                yield SecureDataFrame.create_from_datasource(data, config.classification, authority)
            except DigestError as error:
                raise DatasourceSchemaError(
                    self.source, f"{error}; declare the column's type in 'columns'"
                ) from None

    def _check_marking(self, marked: SecurityLevel | None) -> None:
        declared = self.config.classification
        if marked is not None and marked > declared:
            raise MarkingError(
                self.source,
                f"the file is marked {marked} but the datasource declares classification "
                f"{declared}; declare at least {marked}",
            )


def open_datasource(config: DatasourceConfig) -> Datasource:
    """The datasource for ``config``."""
    return Datasource(config)


def file_datasource_config(path: Path | str, **settings: Any) -> DatasourceConfig:
    """Settings for a file, the kind chosen by its suffix (``.csv``, ``.jsonl``, ``.parquet``…).

    ``settings`` are the other fields (``classification`` and ``clearance`` are required).
    """
    path = Path(path)
    model = FILE_SUFFIXES.get(path.suffix.lower())
    if model is None:
        raise UnsupportedSourceError(
            str(path),
            f"unsupported file type {path.suffix or '(no suffix)'!r}; supported: "
            f"{', '.join(FILE_SUFFIXES)}",
        )
    config: DatasourceConfig = model(path=path, **settings)  # type: ignore[assignment]
    return config
