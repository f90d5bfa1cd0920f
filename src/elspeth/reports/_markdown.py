"""The Markdown report: a summary a person reads in a repository or a ticket.

Cell values are untrusted: every one is escaped so that it cannot end a table cell, open a
link, code span or emphasis, or carry HTML into a renderer that allows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import BinaryIO, ClassVar, Final

import pandas as pd

from elspeth.reports._config import MarkdownReportConfig
from elspeth.reports._content import TABLE_ROWS, display_text, report_content, verdicts
from elspeth.sinks import Release, ReportSink, SuiteReport

_ESCAPES: Final[Mapping[str, str]] = {
    "\\": "\\\\",  # first in effect: a trailing backslash must not escape the cell's pipe
    "`": "\\`",
    "*": "\\*",
    "_": "\\_",
    "~": "\\~",
    "[": "\\[",
    "]": "\\]",
    "|": "\\|",
    "#": "\\#",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
}
_SPECIAL: Final = re.compile("|".join(re.escape(character) for character in _ESCAPES))
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n|\u2028|\u2029")


def escape_markdown(text: str) -> str:
    """``text`` as inline Markdown that renders as itself, on one line (breaks become <br>)."""
    escaped = _SPECIAL.sub(lambda match: _ESCAPES[match.group(0)], text)
    return _LINE_BREAK.sub("<br>", escaped)


def _cell(value: object) -> str:
    return escape_markdown(display_text(value))


def _table(data: pd.DataFrame) -> Iterator[str]:
    if len(data.columns) == 0:
        yield "_(no columns)_"
        return
    yield "| " + " | ".join(_cell(column) for column in data.columns) + " |"
    yield "|" + "|".join("---" for _ in data.columns) + "|"
    for values in data.head(TABLE_ROWS).itertuples(index=False, name=None):
        yield "| " + " | ".join(_cell(value) for value in values) + " |"
    if len(data) > TABLE_ROWS:
        yield ""
        yield f"_Showing the first {TABLE_ROWS} of {len(data)} rows._"


class MarkdownReport(ReportSink):
    """A suite's summary as Markdown, marked with its level on the first and the last line."""

    format: ClassVar[str] = "markdown"
    suffix: ClassVar[str] = ".md"
    config: MarkdownReportConfig

    def __init__(self, config: MarkdownReportConfig) -> None:
        super().__init__(config)

    def _render(self, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        content = report_content(report, release.level)
        banner = f"**{content.banner}**"
        lines = [banner, "", f"# Suite report: {escape_markdown(report.suite)}", ""]
        lines += [f"- **{name}:** {escape_markdown(value)}" for name, value in content.facts]
        lines += ["", "## Summary", "", *_table(content.summary), ""]
        lines += ["## Aggregates", ""]
        for aggregate in content.aggregates:
            title = f"{aggregate.experiment}: {aggregate.aggregator}"
            lines += [f"### {escape_markdown(title)}", "", *_table(aggregate.data), ""]
        if not content.aggregates:
            lines += ["_No aggregates in this run._", ""]
        lines += ["## Comparisons with the baseline", ""]
        for comparison in content.comparisons:
            title = f"{comparison.comparison}: {comparison.variant} against {comparison.baseline}"
            lines += [f"### {escape_markdown(title)}", ""]
            found = verdicts(comparison.frame.data)
            lines += [f"- {escape_markdown(verdict)}" for verdict in found]
            lines += [""] if found else []
            lines += [*_table(comparison.frame.data), ""]
        if not content.comparisons:
            lines += ["_No baseline comparisons in this run._", ""]
        if content.graded:
            lines += ["## Graded answers", ""]
            lines += [
                "The reference, the answer, and each scorer's and judge's grade, outcome and "
                "explanation.",
                "",
            ]
        for experiment, graded in content.graded.items():
            lines += [f"### {escape_markdown(experiment)}", "", *_table(graded), ""]
        lines += ["## Clearance plan", "", *_table(content.plan), "", banner, ""]
        handle.write("\n".join(lines).encode("utf-8"))
        return content.result_rows
