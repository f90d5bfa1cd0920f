"""The SQL reader: any SQLAlchemy URL, a query or a table, in chunks when asked.

The URL may hold a password. It never appears in a message: the source is named by the URL with
its password masked, and every driver message is scrubbed of the password in all its spellings.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, Final, cast

import pandas as pd
import sqlalchemy as sa

from elspeth.datasources._config import SqlDatasourceConfig
from elspeth.datasources._errors import DatasourceQueryError, UnsupportedSourceError
from elspeth.datasources._schema import RawChunk
from elspeth.security import SecurityLevel

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


def create_engine(config: SqlDatasourceConfig, source: str) -> sa.Engine:
    """An engine for the URL; a bad URL or a missing driver is an unsupported source."""
    url = config.url.get_secret_value()
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as error:
        raise UnsupportedSourceError(
            source, f"cannot use this URL ({type(error).__name__}: {scrub(str(error), url)})"
        ) from None


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
