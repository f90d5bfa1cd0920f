"""The JSONL reader: one JSON object per line; blank lines are skipped."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from elspeth.datasources._config import JsonlDatasourceConfig
from elspeth.datasources._errors import DatasourceFormatError
from elspeth.datasources._files import open_source_file
from elspeth.datasources._marking import parse_jsonl_header
from elspeth.datasources._schema import RawChunk
from elspeth.datasources._text import DecodedLines
from elspeth.security import LevelParseError, SecurityLevel


def read_jsonl(
    config: JsonlDatasourceConfig,
    source: str,
    chunk_rows: int | None,
    check_marking: Callable[[SecurityLevel | None], None],
) -> Iterator[RawChunk]:
    with open_source_file(config.path, source) as handle:
        records = _records(DecodedLines(handle, config.encoding, source, "JSONL"), source)
        first = next(records, None)
        if first is None:
            raise DatasourceFormatError(source, "has only blank lines")
        try:
            marking = parse_jsonl_header(first[1])
        except LevelParseError:
            raise DatasourceFormatError(
                source, f"line {first[0]}: the header record names no known classification"
            ) from None
        check_marking(marking)
        pending: list[tuple[int, Any]] = [] if marking is not None else [first]
        first_row = 0
        for numbered in records:
            pending.append(numbered)
            if chunk_rows is not None and len(pending) == chunk_rows:
                yield _chunk(pending, first_row, source)
                first_row += len(pending)
                pending = []
        if pending:
            yield _chunk(pending, first_row, source)
        elif first_row == 0:
            raise DatasourceFormatError(source, "has no data records")


def _records(lines: DecodedLines, source: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasourceFormatError(
                source, f"line {number}: not valid JSON ({error.msg} at column {error.colno})"
            ) from None


def _chunk(numbered: list[tuple[int, Any]], first_row: int, source: str) -> RawChunk:
    for number, record in numbered:
        if not isinstance(record, dict):
            raise DatasourceFormatError(
                source,
                f"line {number}: a JSON {type(record).__name__} where an object was expected",
            )
    data = pd.DataFrame([record for _, record in numbered])
    data.index = pd.RangeIndex(first_row, first_row + len(numbered))
    return RawChunk(data, first_row, tuple(number for number, _ in numbered), from_text=False)
