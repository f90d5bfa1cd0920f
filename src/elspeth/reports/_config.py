"""Report sink settings: one pydantic model per format, told apart by ``type``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elspeth.sinks import ReportSinkSettings


class HtmlReportConfig(ReportSinkSettings):
    """One self-contained HTML page: summary, tables, inline SVG charts, the clearance plan."""

    type: Literal["html_report"] = "html_report"
    title: str | None = Field(
        default=None,
        description="The page heading; the suite's name when not set.",
    )


class MarkdownReportConfig(ReportSinkSettings):
    """A Markdown summary: run, aggregates, comparisons with verdicts, the clearance plan."""

    type: Literal["markdown_report"] = "markdown_report"


class ExcelReportConfig(ReportSinkSettings):
    """An Excel workbook: summary, results, aggregates, comparisons, plan and manifest sheets."""

    type: Literal["excel_report"] = "excel_report"
