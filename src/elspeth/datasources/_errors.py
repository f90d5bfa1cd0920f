"""Datasource failures: each message names the source and the problem, never row content."""

from __future__ import annotations

from elspeth.errors import ConfigurationError, ElspethError
from elspeth.security import SecurityError


class DatasourceError(ElspethError):
    """A datasource could not produce its data; ``source`` names the file or the masked URL."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class DatasourceNotFoundError(DatasourceError, ConfigurationError):
    """The configured file does not exist (a configuration mistake, found before reading)."""


class UnsupportedSourceError(DatasourceError, ConfigurationError):
    """The file type, URL scheme or driver is not one a datasource can read."""


class DatasourceAccessError(DatasourceError):
    """The file exists but cannot be opened (permissions, a directory, an I/O error)."""


class DatasourceEncodingError(DatasourceError):
    """The bytes are not valid in the declared encoding; the message gives the byte offset."""


class DatasourceFormatError(DatasourceError):
    """The file is malformed: empty, ragged rows, bad quoting, a bad JSON line, not Parquet."""


class DatasourceSchemaError(DatasourceError):
    """The data does not match the declared columns or types; the message names the column."""


class DatasourceQueryError(DatasourceError):
    """The SQL connection or query failed; the URL in the message has its password masked."""


class MarkingError(DatasourceError, SecurityError):
    """The file is marked with a classification above the one the datasource declares.

    Reading it at the lower declared level would be a write-down through the file system, so it
    is refused like any other security rule.
    """
