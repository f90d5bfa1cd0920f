"""The Excel report: a workbook of the run's summary, results, aggregates, comparisons, plan and
manifest, every sheet marked with the classification on its first row.

Formula injection is refused twice: the workbook stores every string as text (XlsxWriter's
``strings_to_formulas`` and ``strings_to_urls`` off), and every text cell is also guarded with
:func:`~elspeth.sinks.neutralise_formula`, so a copy pasted or re-typed into another sheet stays
inert. The workbook is built in memory, so no temporary file holds classified data.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Final

import numpy as np
import pandas as pd

from elspeth._lazy import lazy_module
from elspeth.errors import ElspethError
from elspeth.reports._config import ExcelReportConfig
from elspeth.reports._content import (
    ReportContent,
    comparisons_table,
    is_missing,
    is_number,
    report_content,
)
from elspeth.reports._marking import MARKINGS
from elspeth.sinks import (
    Release,
    ReportSink,
    SinkError,
    SuiteReport,
    WrittenArtifact,
    neutralise_formula,
)

if TYPE_CHECKING:
    import xlsxwriter
else:
    xlsxwriter = lazy_module("xlsxwriter")  # only an Excel report pays for importing it

EXCEL_ROWS: Final = 1_048_576
EXCEL_COLUMNS: Final = 16_384
EXCEL_CELL_CHARACTERS: Final = 32_767
SHEET_NAME_LENGTH: Final = 31
_FORBIDDEN_IN_SHEET_NAMES: Final = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
_RESERVED_SHEET_NAMES: Final = frozenset({"history"})
_BANNER_ROWS: Final = 1
_LARGEST_EXACT_INTEGER: Final = 2**53
_DATE_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"


class _LimitError(ElspethError):
    """The workbook cannot hold this report; :meth:`ExcelReport.write` names the file."""


class _Workbook:
    """An in-memory XlsxWriter workbook whose sheets all start with the classification banner."""

    def __init__(self, handle: BinaryIO, content: ReportContent, report: SuiteReport) -> None:
        marking = MARKINGS[content.level]
        self.banner = content.banner
        self.book = xlsxwriter.Workbook(
            handle,
            {
                "in_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "default_date_format": _DATE_FORMAT,
            },
        )
        self.banner_format = self.book.add_format(
            {"bold": True, "font_color": marking.foreground, "bg_color": marking.background}
        )
        self.header_format = self.book.add_format({"bold": True, "bottom": 1})
        self.date_format = self.book.add_format({"num_format": _DATE_FORMAT})
        self.used_names: set[str] = set()
        properties: dict[str, Any] = {
            "title": f"Suite report: {report.suite}",
            "subject": marking.text,
            "category": marking.text,
            "keywords": f"classification:{content.level.name}",
            "comments": f"{marking.text}. Written by Elspeth for run {report.run_id}.",
        }
        created = _created(report.created_at)
        if created is not None:
            properties["created"] = created  # the same report gives the same bytes
        self.book.set_properties(properties)
        self.book.set_custom_property("Classification", content.level.name)

    def sheet(self, wanted: str) -> _Sheet:
        name = _sheet_name(wanted, self.used_names)
        self.used_names.add(name.casefold())
        worksheet = self.book.add_worksheet(name)
        worksheet.write_string(0, 0, self.banner, self.banner_format)
        return _Sheet(self, worksheet, name)

    def close(self) -> None:
        self.book.close()


class _Sheet:
    def __init__(self, workbook: _Workbook, worksheet: Any, name: str) -> None:
        self.workbook = workbook
        self.worksheet = worksheet
        self.name = name
        self.next_row = _BANNER_ROWS
        self.columns: list[str] = []

    def skip(self) -> None:
        self.next_row += 1

    def pairs(self, pairs: Iterable[tuple[str, Any]]) -> None:
        for name, value in pairs:
            self._value(self.next_row, 0, name, "")
            self._value(self.next_row, 1, value, name)
            self.next_row += 1

    def table(self, data: pd.DataFrame) -> None:
        _require_fits(self.name, self.next_row + 1 + len(data), len(data.columns))
        self.header([str(column) for column in data.columns])
        self.rows(data)

    def header(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        for position, column in enumerate(self.columns):
            self.worksheet.write_string(
                self.next_row, position, neutralise_formula(column), self.workbook.header_format
            )
            self.worksheet.set_column(position, position, min(48, max(10, len(column) + 2)))
        self.next_row += 1

    def rows(self, data: pd.DataFrame, prefix: tuple[Any, ...] = ()) -> None:
        """``data``'s rows under the last header, each led by the ``prefix`` values."""
        for values in data.astype(object).itertuples(index=False, name=None):
            for position, value in enumerate(prefix + values):
                self._value(self.next_row, position, value, self.columns[position])
            self.next_row += 1

    def freeze_below(self, row: int) -> None:
        self.worksheet.freeze_panes(row, 0)

    def _value(self, row: int, column: int, value: Any, column_name: str) -> None:
        """One cell: blank when missing, numbers and booleans as such, text guarded."""
        if is_missing(value):
            return
        if isinstance(value, bool | np.bool_):
            self.worksheet.write_boolean(row, column, bool(value))
            return
        if is_number(value) and _exact_in_excel(value):
            self.worksheet.write_number(row, column, float(value))
            return
        if isinstance(value, dt.datetime | dt.date) and getattr(value, "tzinfo", None) is None:
            self.worksheet.write_datetime(row, column, value, self.workbook.date_format)
            return
        text = value.isoformat() if isinstance(value, dt.datetime | dt.date) else str(value)
        if len(text) > EXCEL_CELL_CHARACTERS:
            raise _LimitError(
                f"sheet {self.name!r}, row {row + 1}, column {column_name!r} holds "
                f"{len(text)} characters; an Excel cell holds at most {EXCEL_CELL_CHARACTERS}. "
                "Nothing was truncated: write such data with a csv, jsonl or parquet sink"
            )
        self.worksheet.write_string(row, column, neutralise_formula(text))


def _exact_in_excel(value: Any) -> bool:
    """Excel numbers are doubles: infinities and integers beyond 2**53 are kept as text."""
    number = float(value)
    if not math.isfinite(number):
        return False
    return not (isinstance(value, int | np.integer) and abs(int(value)) > _LARGEST_EXACT_INTEGER)


def _require_fits(sheet: str, rows: int, columns: int) -> None:
    if rows > EXCEL_ROWS:
        raise _LimitError(
            f"sheet {sheet!r} needs {rows} rows (banner, header and data); an Excel sheet holds "
            f"at most {EXCEL_ROWS}. Nothing was truncated: write the results with a csv or "
            "parquet sink instead"
        )
    if columns > EXCEL_COLUMNS:
        raise _LimitError(
            f"sheet {sheet!r} needs {columns} columns; an Excel sheet holds at most {EXCEL_COLUMNS}"
        )


def _sheet_name(wanted: str, used: set[str]) -> str:
    """A valid, unused sheet name close to ``wanted``: Excel forbids ``[]:*?/\\``, a leading or
    trailing apostrophe, more than 31 characters and names equal but for case."""
    base = _FORBIDDEN_IN_SHEET_NAMES.sub("_", wanted).strip("'")[:SHEET_NAME_LENGTH] or "sheet"
    candidate, counter = base, 1
    while candidate.casefold() in used or candidate.casefold() in _RESERVED_SHEET_NAMES:
        counter += 1
        suffix = f"~{counter}"
        candidate = base[: SHEET_NAME_LENGTH - len(suffix)] + suffix
    return candidate


def _union_columns(frames: Iterable[pd.DataFrame]) -> list[Any]:
    """Every column of ``frames``, each once, in the order first seen."""
    return list(dict.fromkeys(column for data in frames for column in data.columns))


def _created(created_at: str) -> dt.datetime | None:
    try:
        created = dt.datetime.fromisoformat(created_at)
    except ValueError:
        return None
    if created.tzinfo is not None:
        created = created.astimezone(dt.UTC).replace(tzinfo=None)
    return created


class ExcelReport(ReportSink):
    """A suite's report as an .xlsx workbook; see the module's description."""

    format: ClassVar[str] = "xlsx"
    suffix: ClassVar[str] = ".xlsx"
    config: ExcelReportConfig

    def __init__(self, config: ExcelReportConfig) -> None:
        super().__init__(config)

    def write(self, report: SuiteReport, destination: Path | str) -> WrittenArtifact:
        """As :meth:`ReportSink.write`; a report too big for Excel raises :class:`SinkError`
        naming the sheet, with nothing left behind."""
        try:
            return super().write(report, destination)
        except _LimitError as error:
            raise SinkError(destination, str(error)) from None

    def _render(self, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        content = report_content(report, release.level)
        result_columns = _union_columns(content.results.values())
        # Refused before a single cell is built: the results sheet is the one that can overflow.
        _require_fits("results", _BANNER_ROWS + 1 + content.result_rows, 1 + len(result_columns))
        workbook = _Workbook(handle, content, report)
        # Sheets in reading order; the "agg-" prefix keeps aggregate sheets clear of the others.
        summary = workbook.sheet("summary")
        results = workbook.sheet("results")
        aggregates = [
            (workbook.sheet(f"agg-{aggregate.experiment}-{aggregate.aggregator}"), aggregate)
            for aggregate in content.aggregates
        ]
        graded = workbook.sheet("graded answers") if content.graded else None
        comparisons = workbook.sheet("comparisons")
        plan = workbook.sheet("plan")
        manifest = workbook.sheet("manifest")

        summary.pairs(content.facts)
        summary.skip()
        summary.table(content.summary)
        summary.skip()
        summary.table(
            pd.DataFrame(
                [(sheet.name, a.experiment, a.aggregator) for sheet, a in aggregates],
                columns=["aggregate sheet", "experiment", "aggregator"],
                dtype=object,
            )
        )
        results.header(["experiment", *map(str, result_columns)])
        for experiment, data in content.results.items():
            results.rows(data.reindex(columns=result_columns), prefix=(experiment,))
        if graded is not None:
            graded_columns = _union_columns(content.graded.values())
            graded.header(["experiment", *map(str, graded_columns)])
            for experiment, data in content.graded.items():
                graded.rows(data.reindex(columns=graded_columns), prefix=(experiment,))
        for sheet, data in (
            *((sheet, aggregate.data) for sheet, aggregate in aggregates),
            (comparisons, comparisons_table(content.comparisons)),
            (plan, content.plan),
        ):
            sheet.table(data)
        frozen = (results, *(s for s, _ in aggregates), *([graded] if graded else []), comparisons)
        for sheet in (*frozen, plan):
            sheet.freeze_below(_BANNER_ROWS + 1)
        manifest.pairs((("run id", report.run_id), ("classification", content.level.name)))
        manifest.skip()
        manifest.table(
            pd.DataFrame(
                [
                    # The run directory's own names, as in manifest.json: no host path.
                    (a.path.name, a.format, a.level.name, a.rows, a.digest_hex)
                    for a in report.artifacts
                ],
                columns=["path", "format", "classification", "rows", "blake3"],
                dtype=object,
            )
        )
        workbook.close()
        return content.result_rows
