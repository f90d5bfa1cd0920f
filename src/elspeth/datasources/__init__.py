"""Trusted datasources: CSV, JSONL, Parquet and SQL, producing origin frames.

A datasource runs in the orchestrator. It reads its input, checks it against the declared
``columns`` and mints :class:`~elspeth.security.SecureDataFrame` origin frames at its declared
classification through the seal authority. Every bad input raises a :class:`DatasourceError`
naming the source and the problem (never row content). See ``docs/datasources-and-sinks.md``.
"""

from __future__ import annotations

from elspeth.datasources._config import (
    FILE_SUFFIXES,
    ColumnType,
    ConfiguredLevel,
    CsvDatasourceConfig,
    DatasourceConfig,
    ExtraColumns,
    JsonlDatasourceConfig,
    ParquetDatasourceConfig,
    SqlDatasourceConfig,
    TextEncoding,
)
from elspeth.datasources._errors import (
    DatasourceAccessError,
    DatasourceEncodingError,
    DatasourceError,
    DatasourceFormatError,
    DatasourceNotFoundError,
    DatasourceQueryError,
    DatasourceSchemaError,
    MarkingError,
    UnsupportedSourceError,
)
from elspeth.datasources._files import check_source_file
from elspeth.datasources._marking import (
    CSV_BANNER_PREFIX,
    JSONL_FORMAT,
    JSONL_HEADER_KEY,
    PARQUET_CLASSIFICATION_KEY,
    csv_banner,
    jsonl_header,
)
from elspeth.datasources._source import Datasource, file_datasource_config, open_datasource
from elspeth.datasources._sql import (
    check_sqlite_database,
    sqlite_database,
    sqlite_url_relative_to,
)

__all__ = [
    "CSV_BANNER_PREFIX",
    "FILE_SUFFIXES",
    "JSONL_FORMAT",
    "JSONL_HEADER_KEY",
    "PARQUET_CLASSIFICATION_KEY",
    "ColumnType",
    "ConfiguredLevel",
    "CsvDatasourceConfig",
    "Datasource",
    "DatasourceAccessError",
    "DatasourceConfig",
    "DatasourceEncodingError",
    "DatasourceError",
    "DatasourceFormatError",
    "DatasourceNotFoundError",
    "DatasourceQueryError",
    "DatasourceSchemaError",
    "ExtraColumns",
    "JsonlDatasourceConfig",
    "MarkingError",
    "ParquetDatasourceConfig",
    "SqlDatasourceConfig",
    "TextEncoding",
    "UnsupportedSourceError",
    "check_source_file",
    "check_sqlite_database",
    "csv_banner",
    "file_datasource_config",
    "jsonl_header",
    "open_datasource",
    "sqlite_database",
    "sqlite_url_relative_to",
]
