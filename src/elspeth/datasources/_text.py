"""Streaming a text file line by line with strict decoding and exact error positions."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO, Final

from elspeth.datasources._errors import DatasourceEncodingError, DatasourceFormatError

_BLOCK_SIZE: Final = 1 << 20
_BYTE_ORDER_MARK: Final = "\ufeff"
_WIDE_ENCODINGS: Final = ("utf-16", "utf-32")
_PARQUET_MAGIC: Final = b"PAR1"


class DecodedLines:
    """The lines of a binary stream, decoded strictly; each ends with ``"\\n"`` except the last.

    Lines are split on ``"\\n"`` only, so CSV quoting can still span lines. A decoding error is
    reported with the byte offset and line where it occurred and the encoding that was tried.
    """

    def __init__(self, handle: BinaryIO, encoding: str, source: str, kind: str) -> None:
        self._handle = handle
        self._encoding = encoding
        self._source = source
        self._kind = kind
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._wide = codecs.lookup(encoding).name.startswith(_WIDE_ENCODINGS)
        self._consumed = 0
        self._newlines = 0

    def __iter__(self) -> Iterator[str]:
        pending = ""
        first = True
        while True:
            block = self._handle.read(_BLOCK_SIZE)
            if first:
                self._check_not_binary(block)
            text = self._decode(block, final=not block)
            if first:
                text = text.removeprefix(_BYTE_ORDER_MARK)
                first = False
            self._consumed += len(block)
            self._newlines += block.count(b"\n")
            pending += text
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
            if not block:
                break
        if pending:
            yield pending

    def _decode(self, block: bytes, *, final: bool) -> str:
        buffered = len(self._decoder.getstate()[0])
        try:
            return self._decoder.decode(block, final)
        except UnicodeDecodeError as error:
            before_in_block = max(0, error.start - buffered)
            offset = self._consumed - buffered + error.start
            line = self._newlines + block[:before_in_block].count(b"\n") + 1
            raise DatasourceEncodingError(
                self._source,
                f"is not valid {self._encoding}: undecodable byte at offset {offset} "
                f"(line {line}); set 'encoding' to the file's real encoding "
                f"(for example cp1252 or latin-1)",
            ) from None

    def _check_not_binary(self, block: bytes) -> None:
        if block.startswith(_PARQUET_MAGIC):
            raise DatasourceFormatError(
                self._source, f"is a Parquet file, not {self._kind}; use type 'parquet'"
            )
        nul = -1 if self._wide else block.find(b"\x00")
        if nul >= 0:
            raise DatasourceFormatError(
                self._source,
                f"looks binary (a NUL byte at offset {nul}), not {self._kind} text in "
                f"{self._encoding}",
            )
