"""The SQL reader: any SQLAlchemy URL, a query or a table, in chunks when asked.

The URL may hold a password. It never appears in a message: the source is named by the URL with
its password masked, and every driver message is scrubbed of the password in all its spellings.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import pandas as pd

from elspeth._lazy import lazy_module
from elspeth.datasources._config import SqlDatasourceConfig
from elspeth.datasources._errors import DatasourceQueryError, UnsupportedSourceError
from elspeth.datasources._files import check_source_file
from elspeth.datasources._schema import RawChunk
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import sqlalchemy as sa
else:
    sa = lazy_module("sqlalchemy")  # only an SQL datasource pays for importing it

_MASK: Final = "***"
_BACKGROUND_NOTE: Final = "\n(Background on this error"


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, or a placeholder if it does not parse."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<an SQL URL that does not parse>"


def scrub(message: str, url: str) -> str:
    """``message`` with the URL's password removed, raw and percent-encoded."""
    try:
        password = sa.make_url(url).password
    except sa.exc.ArgumentError:
        password = None
    message = message.split(_BACKGROUND_NOTE, 1)[0].strip()
    if password:
        secret = str(password)
        for spelling in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            message = message.replace(spelling, _MASK)
    return message


def _sqlite_url(url: str) -> sa.URL | None:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    return parsed


def _uri_mode(parsed: sa.URL) -> bool:
    return str(parsed.query.get("uri", "")).lower() in ("true", "1") and str(
        parsed.database
    ).startswith("file:")


def sqlite_database(url: str) -> Path | None:
    """The file an SQLite URL names; ``None`` for other databases and in-memory ones."""
    parsed = _sqlite_url(url)
    if parsed is None:
        return None
    database = str(parsed.database)
    return Path(database.removeprefix("file:") if _uri_mode(parsed) else database)


def sqlite_url_relative_to(url: str, base: Path) -> str:
    """``url`` with a relative SQLite database path made absolute against ``base`` (the
    settings file's directory); any other URL unchanged."""
    parsed = _sqlite_url(url)
    database = sqlite_database(url)
    if parsed is None or database is None or database.expanduser().is_absolute():
        return url
    absolute = str(base / database)
    rewritten = parsed.set(database=f"file:{absolute}" if _uri_mode(parsed) else absolute)
    return rewritten.render_as_string(hide_password=False)


def check_sqlite_database(url: str) -> None:
    """An SQLite URL must name a database file that exists: SQLite would otherwise create an
    empty one on connecting, and the run would fail later, on no table, leaving it behind."""
    database = sqlite_database(url)
    if database is not None:
        check_source_file(database.expanduser(), f"SQLite database {database}", "url")


def create_engine(config: SqlDatasourceConfig, source: str) -> sa.Engine:
    """An engine for the URL; a bad URL or a missing driver is an unsupported source, and an
    SQLite file that does not exist is refused (never created)."""
    url = config.url.get_secret_value()
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as error:
        raise UnsupportedSourceError(
            source, f"cannot use this URL ({type(error).__name__}: {scrub(str(error), url)})"
        ) from None
    try:
        check_sqlite_database(url)
    except BaseException:
        engine.dispose()
        raise
    return engine


def read_sql(
    config: SqlDatasourceConfig,
    source: str,
    chunk_rows: int | None,
    check_marking: Callable[[SecurityLevel | None], None],
) -> Iterator[RawChunk]:
    check_marking(None)
    url = config.url.get_secret_value()
    engine = create_engine(config, source)
    try:
        with engine.connect() as connection:
            first_row = 0
            for data in _results(config, connection, chunk_rows):
                data.index = pd.RangeIndex(first_row, first_row + len(data))
                if len(data):
                    yield RawChunk(data, first_row, None, from_text=False)
                first_row += len(data)
            if first_row == 0:
                raise DatasourceQueryError(source, f"the {_what(config)} returned no rows")
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
        # pandas wraps the SQLAlchemy error; the driver's own message is the useful part.
        cause = error.__cause__ if isinstance(error.__cause__, sa.exc.SQLAlchemyError) else error
        detail = str(getattr(cause, "orig", None) or cause)
        raise DatasourceQueryError(
            source, f"the {_what(config)} failed ({type(cause).__name__}: {scrub(detail, url)})"
        ) from None
    except ValueError as error:  # pandas: a table that does not exist
        raise DatasourceQueryError(
            source, f"the {_what(config)} failed ({scrub(str(error), url)})"
        ) from None
    finally:
        engine.dispose()


def _what(config: SqlDatasourceConfig) -> str:
    return "query" if config.query is not None else f"read of table {config.table!r}"


def _results(
    config: SqlDatasourceConfig, connection: sa.Connection, chunk_rows: int | None
) -> Iterator[pd.DataFrame]:
    read: Callable[..., Any]
    if config.query is not None:
        query = sa.text(config.query)
        read = functools.partial(pd.read_sql_query, query, connection, params=config.parameters)
    else:
        read = functools.partial(pd.read_sql_table, str(config.table), connection)
    if chunk_rows is None:
        yield cast(pd.DataFrame, read())
    else:
        yield from cast(Iterator[pd.DataFrame], read(chunksize=chunk_rows))
