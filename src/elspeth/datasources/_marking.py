"""How Elspeth marks the classification inside the files its sinks write.

Sinks write these marks and datasources read them back, so both sides share this one definition:

- CSV: the first line is ``# classification: <LEVEL>``.
- JSONL: the first line is a header record ``{"_elspeth": {"classification": "<LEVEL>", ...}}``.
- Parquet: the file-level key-value metadata ``elspeth.classification = <LEVEL>``.

A datasource that finds a mark above its declared classification refuses to read the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from elspeth.security import LevelParseError, SecurityLevel

CSV_BANNER_PREFIX: Final = "# classification:"
JSONL_HEADER_KEY: Final = "_elspeth"
JSONL_FORMAT: Final = "elspeth-jsonl-v1"
PARQUET_CLASSIFICATION_KEY: Final = b"elspeth.classification"


def csv_banner(level: SecurityLevel) -> str:
    """The first line of a CSV file written at ``level``, without its line ending."""
    return f"{CSV_BANNER_PREFIX} {level.name}"


def jsonl_header(level: SecurityLevel) -> dict[str, Any]:
    """The first record of a JSONL file written at ``level``."""
    return {JSONL_HEADER_KEY: {"classification": level.name, "format": JSONL_FORMAT}}


def parse_csv_banner(line: str) -> SecurityLevel | None:
    """The level a CSV banner line names, or ``None`` if ``line`` is not a banner.

    Raises :class:`LevelParseError` for a banner naming no known level.
    """
    stripped = line.strip()
    if not stripped.startswith(CSV_BANNER_PREFIX):
        return None
    return SecurityLevel.parse(stripped[len(CSV_BANNER_PREFIX) :])


def parse_jsonl_header(record: object) -> SecurityLevel | None:
    """The level a JSONL header record names, or ``None`` if ``record`` is not a header."""
    if not isinstance(record, Mapping) or set(record) != {JSONL_HEADER_KEY}:
        return None
    header = record[JSONL_HEADER_KEY]
    if not isinstance(header, Mapping) or not isinstance(header.get("classification"), str):
        raise LevelParseError("the JSONL header record has no classification string")
    return SecurityLevel.parse(header["classification"])


def parse_parquet_marking(metadata: Mapping[bytes, bytes] | None) -> SecurityLevel | None:
    """The level in Parquet key-value metadata, or ``None`` if the file carries none."""
    if not metadata or PARQUET_CLASSIFICATION_KEY not in metadata:
        return None
    return SecurityLevel.parse(metadata[PARQUET_CLASSIFICATION_KEY].decode("utf-8", "replace"))
