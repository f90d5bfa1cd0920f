"""The three report sinks through the real standalone seal authority: content, marking,
escaping, formula neutralisation, privacy, clearance, missing columns and size limits."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import markupsafe
import numpy as np
import openpyxl
import pandas as pd
import pytest

from elspeth.reports import (
    CONTENT_SECURITY_POLICY,
    REPORT_SINKS,
    ExcelReport,
    ExcelReportConfig,
    HtmlReport,
    HtmlReportConfig,
    MarkdownReport,
    MarkdownReportConfig,
    escape_markdown,
)
from elspeth.security import ClearanceError, SecureDataFrame, SecurityLevel
from elspeth.sidecar import SidecarClient
from elspeth.sinks import (
    CsvSinkConfig,
    ExperimentReport,
    ReportSink,
    SinkError,
    SuiteReport,
    open_sink,
)
from tests.support.reports import CRITERIA, EXPERIMENTS, HOSTILE_MESSAGE, ROWS, make_suite_report

pytestmark = pytest.mark.integration

MARKING = "Classification: OFFICIAL"
BANNER = f"{MARKING} · Run status: complete"
SINKS: dict[str, Callable[[str], ReportSink]] = {
    "html": lambda clearance: HtmlReport(HtmlReportConfig(clearance=clearance)),
    "markdown": lambda clearance: MarkdownReport(MarkdownReportConfig(clearance=clearance)),
    "excel": lambda clearance: ExcelReport(ExcelReportConfig(clearance=clearance)),
}
HOSTILE_LABEL = "<script>alert(2)</script> $\\frac{ | `x` [a](http://example.invalid)"


def _with_results(
    experiment: ExperimentReport, change: Callable[[pd.DataFrame], pd.DataFrame]
) -> ExperimentReport:
    """The experiment with every row frame replaced by a derived frame holding changed data."""
    return dataclasses.replace(
        experiment,
        results=tuple(frame.with_new_data(change(frame.data)) for frame in experiment.results),
    )


def _with_comparison_data(
    report: SuiteReport, change: Callable[[pd.DataFrame], pd.DataFrame]
) -> SuiteReport:
    return dataclasses.replace(
        report,
        comparisons=tuple(
            dataclasses.replace(c, frame=c.frame.with_new_data(change(c.frame.data)))
            for c in report.comparisons
        ),
    )


# --- every sink ---------------------------------------------------------------------------


def test_report_sinks_table_maps_each_settings_class_to_its_sink() -> None:
    assert dict(REPORT_SINKS) == {
        HtmlReportConfig: HtmlReport,
        MarkdownReportConfig: MarkdownReport,
        ExcelReportConfig: ExcelReport,
    }
    assert HtmlReportConfig(clearance="OFFICIAL").type == "html_report"
    with pytest.raises(ValueError, match="extra"):
        ExcelReportConfig.model_validate({"clearance": "OFFICIAL", "colour": "red"})


@pytest.mark.parametrize("kind", SINKS)
def test_report_is_private_marked_and_counts_result_rows(
    authority: SidecarClient, tmp_path: Path, kind: str
) -> None:
    sink = SINKS[kind]("OFFICIAL_SENSITIVE")
    destination = tmp_path / "run" / f"report{sink.suffix}"
    artifact = sink.write(make_suite_report(authority), destination)
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert stat.S_IMODE(destination.parent.stat().st_mode) == 0o700
    assert artifact.rows == len(EXPERIMENTS) * ROWS
    assert artifact.level is SecurityLevel.OFFICIAL
    assert artifact.format == sink.format
    assert len(artifact.seal_audit_ids) == len(set(artifact.seal_audit_ids)) > 0
    assert os.listdir(destination.parent) == [destination.name]  # no temporary file left


@pytest.mark.parametrize("kind", SINKS)
def test_sink_cleared_below_the_report_refuses_before_writing(
    authority: SidecarClient, tmp_path: Path, kind: str
) -> None:
    sink = SINKS[kind]("UNOFFICIAL")
    run = tmp_path / "run"
    with pytest.raises(ClearanceError):
        sink.write(make_suite_report(authority), run / f"report{sink.suffix}")
    assert not run.exists()  # not even the directory: the refusal came first


# --- Markdown -----------------------------------------------------------------------------


def test_markdown_report_content(authority: SidecarClient, tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    MarkdownReport(MarkdownReportConfig(clearance="OFFICIAL")).write(
        make_suite_report(authority), path
    )
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == lines[-1] == f"**{BANNER}**"
    assert "# Suite report: service-request-triage" in lines
    assert "- **run id:** 20261129T010000Z-abc123" in lines
    for heading in ("## Summary", "## Aggregates", "## Comparisons with the baseline"):
        assert heading in lines
    assert lines.index("## Clearance plan") > lines.index("## Comparisons with the baseline")
    summary_rows = [line for line in lines if line.startswith("| terse\\_prompt | no | mock |")]
    assert summary_rows == ["| terse\\_prompt | no | mock | triage | 40 | 78 | 2 | 0.0078 | "
                            "4340 | no | no |  |"]  # fmt: skip
    assert sum(line.startswith("### ") and "score\\_summary" in line for line in lines) == 3
    assert sum(line.startswith("- urgency: variant higher by") for line in lines) == 2
    assert "| datasource | datasource | OFFICIAL | OFFICIAL | OFFICIAL | yes |" in lines
    assert "HYPERLINK" not in text  # a summary: result rows are not copied into it


def test_markdown_escapes_hostile_cells(authority: SidecarClient, tmp_path: Path) -> None:
    hostile = "a|b `code` <b>bold</b>\nnext line [x](javascript:alert(1)) end\\"
    report = _with_comparison_data(
        make_suite_report(authority), lambda data: data.assign(verdict=hostile, test=hostile)
    )
    path = tmp_path / "report.md"
    MarkdownReport(MarkdownReportConfig(clearance="OFFICIAL")).write(report, path)
    text = path.read_text(encoding="utf-8")
    assert "<b>" not in text
    assert "\\[x\\](javascript" in text
    assert not re.search(r"(?<!\\)\[x", text)  # no link opens
    assert "\nnext line" not in text
    escaped = escape_markdown(hostile)
    assert f"- {escaped}" in text.splitlines()
    tables = [line for line in text.splitlines() if line.startswith("|")]
    header = tables[0]

    def separators(line: str) -> int:
        return len(re.findall(r"(?<!\\)\|", line.replace("\\\\", "")))

    # Every row of a table has as many unescaped pipes as its header: no cell broke out.
    for block in re.split(r"\n(?!\|)", text):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({separators(row) for row in rows}) <= 1, rows
    assert separators(header) == 13


def test_escape_markdown_is_a_pure_function() -> None:
    assert escape_markdown("a|b") == "a\\|b"
    assert escape_markdown("ends with \\") == "ends with \\\\"  # cannot escape the next pipe
    assert escape_markdown("`x` *y* _z_ ~w~ #") == "\\`x\\` \\*y\\* \\_z\\_ \\~w\\~ \\#"
    assert escape_markdown("[a](b) <i> & ") == "\\[a\\](b) &lt;i&gt; &amp; "
    assert escape_markdown("one\r\ntwo\nthree\rfour") == "one<br>two<br>three<br>four"
    assert escape_markdown("3.14 REQ-0001") == "3.14 REQ-0001"


# --- HTML ---------------------------------------------------------------------------------


def test_html_report_is_self_contained_escaped_and_reproducible(
    authority: SidecarClient, tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    report = make_suite_report(authority)
    sink = HtmlReport(HtmlReportConfig(clearance="OFFICIAL", title="Triage <b>review</b>"))
    started = time.perf_counter()
    artifact = sink.write(report, path)
    elapsed = time.perf_counter() - started
    assert sink.write(report, tmp_path / "again.html").digest_hex == artifact.digest_hex
    page = path.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>review</b>" not in page
    assert "<title>[OFFICIAL] Triage &lt;b&gt;review&lt;/b&gt;</title>" in page
    assert f'content="{markupsafe.escape(CONTENT_SECURITY_POLICY)}"' in page
    assert page.count(f">{BANNER}</div>") == 2
    references = re.findall(r'\b(?:src|href|xlink:href)="([^"]*)"', page)
    assert references
    assert all(ref.startswith(("#", "data:")) for ref in references), set(references)
    assert "@import" not in page
    assert "url(http" not in page
    assert page.count("<svg") == 5
    assert page.count('role="img"') == 5
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert [i for i, n in Counter(ids).items() if n > 1] == []  # inline SVGs share no ids
    assert "Showing the first 20 of 40 rows" in page
    assert elapsed < 10  # chart rendering included; see docs/reports.md for measured times


def test_html_report_without_score_columns_still_renders(
    authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    scoreless = _with_results(
        report.experiments[1],
        lambda data: data.drop(columns=[f"{c}_score" for c in CRITERIA]),
    )
    report = dataclasses.replace(
        report, experiments=(report.experiments[0], scoreless, report.experiments[2])
    )
    path = tmp_path / "report.html"
    artifact = HtmlReport(HtmlReportConfig(clearance="OFFICIAL")).write(report, path)
    page = path.read_text(encoding="utf-8")
    assert artifact.rows == len(EXPERIMENTS) * ROWS
    assert page.count("<svg") == 5
    assert "Not shown: terse_prompt (no numeric urgency_score values)." in page


def test_html_report_omits_charts_whose_columns_are_absent(
    authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    measured = [f"{c}_{suffix}" for c in CRITERIA for suffix in ("score", "cost", "latency_ms")]
    report = dataclasses.replace(
        report,
        experiments=tuple(
            _with_results(e, lambda data: data.drop(columns=measured)) for e in report.experiments
        ),
    )
    report = _with_comparison_data(report, lambda data: data.drop(columns=["ci_low", "ci_high"]))
    path = tmp_path / "report.html"
    HtmlReport(HtmlReportConfig(clearance="OFFICIAL")).write(report, path)
    page = path.read_text(encoding="utf-8")
    assert page.count("<svg") == 1  # only cost, from the run summaries
    for note in (
        "urgency: no experiment has numeric urgency_score values; not charted.",
        "versus_baseline (terse_prompt): no ci_low, ci_high columns; not charted.",
        "Latency: no numeric &lt;criterion&gt;_latency_ms columns; not charted.",
    ):
        assert note in page
    assert "run total" in page  # the cost chart's text alternative names its source


def test_html_report_with_hostile_labels_in_charts(
    authority: SidecarClient, tmp_path: Path
) -> None:
    report = _with_comparison_data(
        make_suite_report(authority), lambda data: data.assign(criterion=HOSTILE_LABEL)
    )
    path = tmp_path / "report.html"
    HtmlReport(HtmlReportConfig(clearance="OFFICIAL")).write(report, path)
    page = path.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "](http" in page  # the text, escaped; HTML does not read Markdown links
    assert page.count("<svg") == 5


# --- Excel --------------------------------------------------------------------------------


SUMMARY_HEADER = (
    "experiment",
    "baseline",
    "model",
    "prompt_pack",
    "rows",
    "answers",
    "errors",
    "cost",
    "tokens",
    "partial",
    "early_stopped",
    "stop_reason",
)


def _rows(sheet: Any) -> list[list[Any]]:
    """The sheet's rows as values, trailing empty cells dropped."""
    rows = []
    for row in sheet.iter_rows(values_only=True):
        values = list(row)
        while values and values[-1] is None:
            values.pop()
        rows.append(values)
    return rows


def _workbook(authority: SidecarClient, tmp_path: Path) -> tuple[Path, SuiteReport]:
    report = make_suite_report(authority)
    csv = open_sink(CsvSinkConfig(clearance="OFFICIAL")).write_chunks(
        list(report.experiments[0].results), tmp_path / "run" / "baseline.csv"
    )
    report = dataclasses.replace(report, artifacts=(csv,))
    path = tmp_path / "run" / "report.xlsx"
    ExcelReport(ExcelReportConfig(clearance="OFFICIAL")).write(report, path)
    return path, report


def test_excel_report_sheets_and_banners(authority: SidecarClient, tmp_path: Path) -> None:
    path, report = _workbook(authority, tmp_path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [
        "summary",
        "results",
        # Excel's limit is 31 characters.
        *(f"agg-{name}-score_summary"[:31] for name in EXPERIMENTS),
        "comparisons",
        "plan",
        "manifest",
    ]
    for sheet in book.worksheets:
        assert sheet["A1"].value == BANNER
        assert sheet["A1"].font.b
    assert book.properties.category == MARKING
    assert book.properties.keywords == "classification:OFFICIAL"
    assert MARKING in book.properties.description  # "comments" in XlsxWriter's terms
    assert book.custom_doc_props["Classification"].value == "OFFICIAL"

    results = book["results"]
    header = [cell.value for cell in results[2]]
    assert header[0] == "experiment"
    assert header[1:5] == ["request_id", "service_area", "message", "_row"]
    assert results.max_row == 2 + len(EXPERIMENTS) * ROWS
    assert Counter(row[0].value for row in results.iter_rows(min_row=3)) == dict.fromkeys(
        EXPERIMENTS, ROWS
    )

    manifest = book["manifest"]
    assert [manifest["A2"].value, manifest["B2"].value] == ["run id", report.run_id]
    assert [manifest["A3"].value, manifest["B3"].value] == ["classification", "OFFICIAL"]
    assert [cell.value for cell in manifest[5]] == [
        "path",
        "format",
        "classification",
        "rows",
        "blake3",
    ]
    artifact = report.artifacts[0]
    assert [cell.value for cell in manifest[6]] == [
        artifact.path.name,
        "csv",
        "OFFICIAL",
        ROWS,
        artifact.digest_hex,
    ]
    plan = book["plan"]
    assert [cell.value for cell in plan[2]] == [
        "component",
        "kind",
        "clearance",
        "incoming",
        "outgoing",
        "allowed",
    ]
    assert [cell.value for cell in plan[3]] == [
        "datasource",
        "datasource",
        "OFFICIAL",
        "OFFICIAL",
        "OFFICIAL",
        True,
    ]
    comparisons = book["comparisons"]
    assert [cell.value for cell in comparisons[2]][:4] == [
        "comparison",
        "baseline",
        "variant",
        "criterion",
    ]
    assert comparisons.max_row == 2 + 2 * len(CRITERIA)


def test_excel_report_neutralises_formulas_and_keeps_numbers(
    authority: SidecarClient, tmp_path: Path
) -> None:
    path, _ = _workbook(authority, tmp_path)
    book = openpyxl.load_workbook(path)
    results = book["results"]
    header = [cell.value for cell in results[2]]
    first = {name: cell for name, cell in zip(header, results[3], strict=True)}
    assert first["message"].value == "'" + HOSTILE_MESSAGE
    assert first["message"].data_type == "s"
    assert first["_row"].value == 0
    assert first["_row"].data_type == "n"
    assert isinstance(first["urgency_latency_ms"].value, float)
    error_row = {name: cell.value for name, cell in zip(header, results[3 + 3], strict=True)}
    assert error_row["urgency_outcome"] == "error"
    assert error_row["urgency_score"] is None  # NaN
    assert error_row["urgency_prompt_tokens"] is None  # pandas' NA in an Int64 column
    assert error_row["urgency_response"] is None  # missing text
    summary = _rows(book["summary"])
    start = summary.index([*SUMMARY_HEADER]) + 1
    assert [row[SUMMARY_HEADER.index("cost")] for row in summary[start : start + 3]] == [0.0078] * 3
    assert [row[SUMMARY_HEADER.index("tokens")] for row in summary[start : start + 3]] == [4340] * 3
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                xml = archive.read(name).decode("utf-8")
                assert "<f>" not in xml
                assert "<f " not in xml
        assert "xl/externalLinks" not in " ".join(archive.namelist())
        assert not any("hyperlink" in name.lower() for name in archive.namelist())


def test_excel_sheet_names_are_valid_and_unique(authority: SidecarClient, tmp_path: Path) -> None:
    report = make_suite_report(authority)
    long_name = "an_experiment_with_a_rather_long_name"
    renamed = tuple(
        dataclasses.replace(
            experiment,
            name=f"{long_name}_{index}",
            aggregates={"bad/name:[x]*?": experiment.aggregates["score_summary"]},
        )
        for index, experiment in enumerate(report.experiments)
    )
    report = dataclasses.replace(report, experiments=renamed)
    path = tmp_path / "report.xlsx"
    ExcelReport(ExcelReportConfig(clearance="OFFICIAL")).write(report, path)
    names = openpyxl.load_workbook(path).sheetnames
    aggregate_sheets = [name for name in names if name.startswith("agg-")]
    assert aggregate_sheets == [
        "agg-an_experiment_with_a_rather",
        "agg-an_experiment_with_a_rath~2",
        "agg-an_experiment_with_a_rath~3",
    ]
    summary = _rows(openpyxl.load_workbook(path)["summary"])
    start = summary.index(["aggregate sheet", "experiment", "aggregator"]) + 1
    assert summary[start + 1][:3] == [
        "agg-an_experiment_with_a_rath~2",
        f"{long_name}_1",
        "bad/name:[x]*?",
    ]


def test_excel_refuses_a_cell_longer_than_excel_holds(
    authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    long_text = _with_results(report.experiments[2], lambda data: data.assign(message="x" * 40_000))
    report = dataclasses.replace(report, experiments=(*report.experiments[:2], long_text))
    path = tmp_path / "run" / "report.xlsx"
    with pytest.raises(SinkError, match=r"sheet 'results', row 83, column 'message'") as raised:
        ExcelReport(ExcelReportConfig(clearance="OFFICIAL")).write(report, path)
    assert raised.value.destination == path
    assert "xxxx" not in str(raised.value)
    assert os.listdir(path.parent) == []


def test_excel_refuses_more_rows_than_a_sheet_holds(
    authority: SidecarClient, tmp_path: Path
) -> None:
    rows = 1_048_575  # with the banner and the header, one more than a sheet holds
    frame = SecureDataFrame.create_from_datasource(
        pd.DataFrame({"x": np.arange(rows)}), SecurityLevel.OFFICIAL, authority
    )
    report = make_suite_report(authority)
    big = dataclasses.replace(report.experiments[0], results=(frame,), aggregates={})
    report = dataclasses.replace(report, experiments=(big,), comparisons=())
    path = tmp_path / "run" / "report.xlsx"
    with pytest.raises(SinkError, match=r"sheet 'results' needs 1048577 rows") as raised:
        ExcelReport(ExcelReportConfig(clearance="OFFICIAL")).write(report, path)
    assert "csv or parquet sink" in str(raised.value)
    assert os.listdir(path.parent) == []


def test_comparison_report_columns_keep_their_keys(
    authority: SidecarClient, tmp_path: Path
) -> None:
    # A comparison frame that already carries a "variant" column keeps the report's key.
    report = _with_comparison_data(
        make_suite_report(authority), lambda data: data.assign(variant="from the plugin")
    )
    path = tmp_path / "report.xlsx"
    ExcelReport(ExcelReportConfig(clearance="OFFICIAL")).write(report, path)
    sheet = openpyxl.load_workbook(path)["comparisons"]
    header = [cell.value for cell in sheet[2]]
    assert header.count("variant") == 1
    assert [row[2].value for row in sheet.iter_rows(min_row=3)] == [
        "terse_prompt",
        "terse_prompt",
        "second_opinion",
        "second_opinion",
    ]


# --- import weight and matplotlib's files -------------------------------------------------


def test_import_is_light_and_matplotlib_keeps_only_its_font_cache_in_home(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        import elspeth.reports
        assert "matplotlib" not in sys.modules, "import elspeth.reports loaded matplotlib"
        from elspeth.sidecar import start_standalone_daemon
        from tests.support.reports import make_suite_report
        with start_standalone_daemon(state_dir=Path({str(tmp_path / "state")!r})) as daemon:
            with daemon.connect(op_timeout=10.0) as client:
                elspeth.reports.HtmlReport(
                    elspeth.reports.HtmlReportConfig(clearance="OFFICIAL")
                ).write(make_suite_report(client), Path({str(tmp_path / "report.html")!r}))
        print(os.environ["MPLCONFIGDIR"])
        """
    )
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"}
    }
    environment["HOME"] = str(home)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    config_directory = Path(completed.stdout.strip())
    assert config_directory == home / ".cache" / "elspeth" / "matplotlib"
    assert config_directory.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "report.html").stat().st_size > 0
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written[:3] == [".cache", ".cache/elspeth", ".cache/elspeth/matplotlib"]
    assert all(n.startswith(".cache/elspeth/matplotlib/fontlist-") for n in written[3:]), written
