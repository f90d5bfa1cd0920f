"""The HTML report: one self-contained page that loads nothing from the network.

Jinja2 renders it with autoescaping on, since every cell is untrusted content. A
Content-Security-Policy in the page forbids scripts and any outside resource, so an accidental
external reference is blocked and shows up as a console error rather than a request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar, Final

import jinja2
import pandas as pd

from elspeth.reports._charts import report_charts
from elspeth.reports._config import HtmlReportConfig
from elspeth.reports._content import (
    TABLE_ROWS,
    ReportContent,
    display_text,
    is_number,
    report_content,
    verdicts,
)
from elspeth.reports._marking import MARKINGS
from elspeth.sinks import Release, ReportSink, SuiteReport

PREVIEW_ROWS: Final = 20
"""Result rows shown per experiment; the page says how many there are in all."""
CELL_CHARACTERS: Final = 300
"""Longer cell text is cut, and the page says so."""
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
_TEMPLATE: Final = "report.html.j2"


@dataclass(frozen=True)
class _Cell:
    text: str
    numeric: bool


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[_Cell, ...], ...]
    total_rows: int
    clipped_cells: bool

    @property
    def shown(self) -> int:
        return len(self.rows)


def _table(data: pd.DataFrame, limit: int) -> _Table:
    rows = []
    clipped = False
    for values in data.head(limit).itertuples(index=False, name=None):
        cells = []
        for value in values:
            text = display_text(value)
            if len(text) > CELL_CHARACTERS:
                text, clipped = text[:CELL_CHARACTERS] + "…", True
            cells.append(_Cell(text, is_number(value)))
        rows.append(tuple(cells))
    return _Table(tuple(str(c) for c in data.columns), tuple(rows), len(data), clipped)


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("elspeth.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class HtmlReport(ReportSink):
    """A suite's report as one HTML file, marked with its level at the top and the bottom."""

    format: ClassVar[str] = "html"
    suffix: ClassVar[str] = ".html"
    config: HtmlReportConfig

    def __init__(self, config: HtmlReportConfig) -> None:
        super().__init__(config)

    def _render(self, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        content = report_content(report, release.level)
        page = _environment().get_template(_TEMPLATE).render(self._context(report, content))
        handle.write(page.encode("utf-8"))
        return content.result_rows

    def _context(self, report: SuiteReport, content: ReportContent) -> dict[str, Any]:
        return {
            "content_security_policy": CONTENT_SECURITY_POLICY,
            "marking": MARKINGS[content.level],
            "banner_text": content.banner,
            "status": content.status.value,
            "title": self.config.title or f"Suite report: {report.suite}",
            "description": report.description,
            "run_id": report.run_id,
            "facts": content.facts,
            "summary": _table(content.summary, TABLE_ROWS),
            "charts": report_charts(content),
            "comparisons": [
                {
                    "comparison": comparison.comparison,
                    "baseline": comparison.baseline,
                    "variant": comparison.variant,
                    "verdicts": verdicts(comparison.frame.data),
                    "table": _table(comparison.frame.data, TABLE_ROWS),
                }
                for comparison in content.comparisons
            ],
            "experiments": [
                {
                    "name": experiment.name,
                    "baseline": experiment.baseline,
                    "model": experiment.model,
                    "prompt_pack": experiment.prompt_pack,
                    "criteria": experiment.criteria,
                    "aggregates": [
                        (aggregate.aggregator, _table(aggregate.data, TABLE_ROWS))
                        for aggregate in content.aggregates
                        if aggregate.experiment == experiment.name
                    ],
                    "preview": _table(content.results[experiment.name], PREVIEW_ROWS),
                    "graded": (
                        _table(content.graded[experiment.name], PREVIEW_ROWS)
                        if experiment.name in content.graded
                        else None
                    ),
                }
                for experiment in report.experiments
            ],
            "plan": _table(content.plan, TABLE_ROWS),
            "plan_ok": report.plan.ok,
            "cell_limit": CELL_CHARACTERS,
        }
