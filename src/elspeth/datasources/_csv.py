"""The CSV reader: strict decoding, a header line, every row as wide as the header."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator
from typing import Final

import pandas as pd

from elspeth.datasources._config import CsvDatasourceConfig
from elspeth.datasources._errors import DatasourceFormatError
from elspeth.datasources._files import open_source_file
from elspeth.datasources._marking import parse_csv_banner
from elspeth.datasources._schema import RawChunk
from elspeth.datasources._text import DecodedLines
from elspeth.security import LevelParseError, SecurityLevel

_FIELD_SIZE_LIMIT: Final = 64 << 20
"""Long free-text cells are normal in LLM inputs; the csv module's 128 KiB default is too small."""


def read_csv(
    config: CsvDatasourceConfig,
    source: str,
    chunk_rows: int | None,
    check_marking: Callable[[SecurityLevel | None], None],
) -> Iterator[RawChunk]:
    csv.field_size_limit(_FIELD_SIZE_LIMIT)
    with open_source_file(config.path, source) as handle:
        lines = iter(DecodedLines(handle, config.encoding, source, "CSV"))
        first = next(lines, "")
        try:
            marking = parse_csv_banner(first)
        except LevelParseError:
            raise DatasourceFormatError(
                source, "line 1: the classification banner names no known level"
            ) from None
        check_marking(marking)
        skipped = 0 if marking is None else 1
        body = lines if marking is not None else itertools.chain([first], lines)
        reader = csv.reader(
            body, delimiter=config.delimiter, quotechar=config.quotechar, strict=True
        )
        yield from _chunks(reader, skipped, config, source, chunk_rows)


def _chunks(
    reader: Iterator[list[str]],
    skipped: int,
    config: CsvDatasourceConfig,
    source: str,
    chunk_rows: int | None,
) -> Iterator[RawChunk]:
    records = _records(reader, skipped, source)
    header_line, header = next(records, (0, []))
    if not header:
        raise DatasourceFormatError(source, "has no header line")
    _check_header(header, header_line, source)
    rows: list[list[str]] = []
    lines: list[int] = []
    first_row = 0
    for line, row in records:
        if len(row) != len(header):
            raise DatasourceFormatError(
                source,
                f"line {line} has {len(row)} fields but the header has {len(header)} "
                f"(look for an unquoted '{config.delimiter}' or a missing field)",
            )
        rows.append(row)
        lines.append(line)
        if chunk_rows is not None and len(rows) == chunk_rows:
            yield _chunk(rows, lines, header, first_row, config)
            first_row += len(rows)
            rows, lines = [], []
    if rows:
        yield _chunk(rows, lines, header, first_row, config)
    elif first_row == 0:
        raise DatasourceFormatError(source, f"has a header (line {header_line}) but no data rows")


def _records(
    reader: Iterator[list[str]], skipped: int, source: str
) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the line each starts on (a quoted field may span lines)."""
    consumed = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DatasourceFormatError(
                source, f"line {skipped + consumed + 1}: malformed CSV ({error})"
            ) from None
        start = skipped + consumed + 1
        consumed = reader.line_num  # type: ignore[attr-defined]
        if row:
            yield start, row


def _check_header(header: list[str], line: int, source: str) -> None:
    blank = [str(position + 1) for position, name in enumerate(header) if not name.strip()]
    if blank:
        raise DatasourceFormatError(
            source, f"header (line {line}): column(s) {', '.join(blank)} have no name"
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasourceFormatError(
            source,
            f"header (line {line}): column name(s) {', '.join(map(repr, duplicates))} "
            f"appear more than once",
        )


def _chunk(
    rows: list[list[str]],
    lines: list[int],
    header: list[str],
    first_row: int,
    config: CsvDatasourceConfig,
) -> RawChunk:
    data = pd.DataFrame(rows, columns=header, dtype="str")
    data = data.mask(data.isin(config.null_values))
    data.index = pd.RangeIndex(first_row, first_row + len(rows))
    return RawChunk(data, first_row, tuple(lines), from_text=True)
