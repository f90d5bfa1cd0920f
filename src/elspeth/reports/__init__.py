"""Suite reports: a self-contained HTML page, a Markdown summary and an Excel workbook.

Each is a :class:`~elspeth.sinks.ReportSink`: it checks every frame of the suite against its
clearance (clearance, then seal) before it writes, marks the output with the report's
classification, and writes one private file atomically. See ``docs/reports.md``.

``REPORT_SINKS`` maps each settings class to its sink class.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from elspeth.reports._config import ExcelReportConfig, HtmlReportConfig, MarkdownReportConfig
from elspeth.reports._excel import ExcelReport
from elspeth.reports._html import CONTENT_SECURITY_POLICY, HtmlReport
from elspeth.reports._markdown import MarkdownReport, escape_markdown
from elspeth.reports._marking import MARKINGS, Marking
from elspeth.sinks import ReportSink, ReportSinkSettings

REPORT_SINKS: Final[Mapping[type[ReportSinkSettings], type[ReportSink]]] = MappingProxyType(
    {
        HtmlReportConfig: HtmlReport,
        MarkdownReportConfig: MarkdownReport,
        ExcelReportConfig: ExcelReport,
    }
)
"""Report settings class → the sink that writes it."""

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "MARKINGS",
    "REPORT_SINKS",
    "ExcelReport",
    "ExcelReportConfig",
    "HtmlReport",
    "HtmlReportConfig",
    "MarkdownReport",
    "MarkdownReportConfig",
    "Marking",
    "escape_markdown",
]
