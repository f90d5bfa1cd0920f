"""The one way from frames to output bytes: a release check, then the sink that made it writes.

A :class:`Release` comes only from :meth:`ReportSink.release` and is good only for the sink that
issued it and the very report it was issued for; the bundle's Parquet members go through the
Parquet sink's own check-then-write path; no unchecked writer is exported. Real frames from the
real standalone seal authority, as in the other sink tests; no mocks.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import elspeth.bundle._contents as bundle_contents
import elspeth.sinks
import elspeth.sinks._formats as formats
from elspeth.bundle import BundleConfig, BundleSink
from elspeth.reports import (
    ExcelReport,
    ExcelReportConfig,
    HtmlReport,
    HtmlReportConfig,
    MarkdownReport,
    MarkdownReportConfig,
)
from elspeth.security import ClearanceError, SealError, SecurityLevel
from elspeth.sidecar import SidecarClient
from elspeth.sinks import (
    ParquetSinkConfig,
    Release,
    ReportSink,
    SinkError,
    SuiteReport,
    open_sink,
)
from tests.bundle.helpers import make_key_pair
from tests.support.reports import make_suite_report

pytestmark = pytest.mark.integration

L = SecurityLevel
SinkMaker = Callable[[Path, SecurityLevel], ReportSink]
ISSUED_ONLY = r"issued only by ReportSink\.release"
NO_OVERRIDE = r"may not override ReportSink\.render"


def _bundle_sink(directory: Path, clearance: SecurityLevel) -> ReportSink:
    key = make_key_pair(directory / "keys", "signer")
    signing = {"method": "ed25519", "private_key_path": str(key.private)}
    return BundleSink(BundleConfig.model_validate({"clearance": clearance, "signing": signing}))


REPORT_SINKS: dict[str, SinkMaker] = {
    "bundle": _bundle_sink,
    "html": lambda _, clearance: HtmlReport(HtmlReportConfig(clearance=clearance)),
    "markdown": lambda _, clearance: MarkdownReport(MarkdownReportConfig(clearance=clearance)),
    "excel": lambda _, clearance: ExcelReport(ExcelReportConfig(clearance=clearance)),
}
every_report_sink = pytest.mark.parametrize("make_sink", REPORT_SINKS.values(), ids=REPORT_SINKS)


def _refused(sink: ReportSink, report: SuiteReport, release: Any, match: str) -> None:
    """``render`` raises a SinkError naming the sink and writes nothing at all."""
    handle = io.BytesIO()
    with pytest.raises(SinkError, match=match) as raised:
        sink.render(report, release, handle)
    assert str(raised.value).startswith(f"{type(sink).__name__}: ")
    assert handle.getvalue() == b""


# --- a Release comes only from the release check ---------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Release(L.OFFICIAL, {}),
        lambda: Release(level=L.OFFICIAL, audit_ids={"frame": 1}),
        Release,
    ],
    ids=["positional", "keywords", "empty"],
)
def test_a_release_cannot_be_constructed(make: Callable[[], Release]) -> None:
    with pytest.raises(TypeError, match=ISSUED_ONLY):
        make()


def test_release_cannot_be_subclassed() -> None:
    with pytest.raises(TypeError, match="cannot be subclassed"):
        type("MyRelease", (Release,), {})


def test_a_report_sink_cannot_replace_the_checked_render() -> None:
    def render(self: ReportSink, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        return 0

    with pytest.raises(TypeError, match=NO_OVERRIDE):
        type("Unchecked", (HtmlReport,), {"render": render})
    with pytest.raises(TypeError, match=NO_OVERRIDE):
        type("Unchecked", (HtmlReport,), {"release": lambda self, report: None})


def test_an_issued_release_cannot_be_changed_copied_or_pickled(
    authority: SidecarClient, tmp_path: Path
) -> None:
    release = HtmlReport(HtmlReportConfig(clearance=L.OFFICIAL)).release(
        make_suite_report(authority)
    )

    with pytest.raises(AttributeError, match=ISSUED_ONLY):
        release.level = L.UNOFFICIAL
    with pytest.raises(AttributeError):
        del release.level
    with pytest.raises(TypeError):
        release.audit_ids["forged"] = 1  # type: ignore[index]
    for duplicate in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match=ISSUED_ONLY):
            duplicate(release)


# --- a render takes only a release its sink issued for that very report ---------------------


def _field_for_field_forgery(genuine: Release) -> Release:
    """What code bypassing the constructor could make: every field copied from a real one."""
    forged = object.__new__(Release)
    for name in ("level", "audit_ids", "_sink", "_report", "_frames"):
        object.__setattr__(forged, name, getattr(genuine, name))
    return forged


@every_report_sink
@pytest.mark.parametrize("forgery", ["field_for_field", "fields_only", "other_sink", "not_one"])
def test_rendering_with_a_forged_release_fails_and_writes_nothing(
    make_sink: SinkMaker, forgery: str, authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    sink = make_sink(tmp_path / "sink", L.OFFICIAL)
    other = make_sink(tmp_path / "other", L.OFFICIAL)
    genuine = other.release(report)
    forged: Any
    if forgery == "field_for_field":
        forged = _field_for_field_forgery(sink.release(report))
    elif forgery == "fields_only":
        forged = object.__new__(Release)
        object.__setattr__(forged, "level", report.level)
        object.__setattr__(forged, "audit_ids", dict(genuine.audit_ids))
    elif forgery == "other_sink":
        forged = genuine  # a real release, but issued by another sink
    else:
        forged = dataclasses.make_dataclass("Lookalike", ["level", "audit_ids"])(
            report.level, dict(genuine.audit_ids)
        )

    _refused(sink, report, forged, "refuses to render with a release it did not issue")


@every_report_sink
def test_a_release_for_one_report_cannot_render_another(
    make_sink: SinkMaker, authority: SidecarClient, tmp_path: Path
) -> None:
    report_a, report_b = make_suite_report(authority), make_suite_report(authority)
    sink = make_sink(tmp_path, L.OFFICIAL)
    release = sink.release(report_a)

    _refused(sink, report_b, release, "with a release issued for another")
    # Not even an equal copy of the report it was issued for.
    _refused(sink, dataclasses.replace(report_a), release, "with a release issued for another")

    rendered = io.BytesIO()
    assert sink.render(report_a, release, rendered) > 0
    assert rendered.getvalue()


@every_report_sink
def test_a_frame_slipped_into_a_released_report_is_refused(
    make_sink: SinkMaker, authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    sink = make_sink(tmp_path, L.OFFICIAL)
    release = sink.release(report)
    # ExperimentReport is frozen, but its aggregates mapping is an ordinary dict.
    aggregates = report.experiments[0].aggregates
    assert isinstance(aggregates, dict)
    unchecked = report.experiments[0].results[0].with_uplifted_security_level(L.OFFICIAL_SENSITIVE)
    aggregates["slipped_in"] = unchecked

    _refused(sink, report, release, "the report's frames changed since its release check")


# --- no unchecked writer ---------------------------------------------------------------------


def test_the_sinks_package_exports_no_unchecked_writer() -> None:
    assert "write_parquet" not in elspeth.sinks.__all__
    assert not hasattr(elspeth.sinks, "write_parquet")
    with pytest.raises(ImportError):
        exec("from elspeth.sinks import write_parquet", {})
    public = {name for name in dir(elspeth.sinks) if not name.startswith("_")}
    assert not {name for name in public if name.startswith("write")}
    # The format writers, which check nothing, are private even inside the package.
    assert not {name for name in vars(formats) if name.startswith("write")}
    # The bundle holds no reference to any of them.
    assert not {name for name in vars(bundle_contents) if "write_" in name}


# --- the bundle's Parquet members go through the Parquet sink's checked path ----------------


def test_the_bundle_refuses_a_frame_above_its_clearance_before_writing_anything(
    authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    above = report.comparisons[-1].frame.with_uplifted_security_level(L.OFFICIAL_SENSITIVE)
    report = dataclasses.replace(
        report,
        comparisons=(
            *report.comparisons[:-1],
            dataclasses.replace(report.comparisons[-1], frame=above),
        ),
    )
    sink = _bundle_sink(tmp_path, L.OFFICIAL)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    refusal = f"frame {above.frame_id} is OFFICIAL_SENSITIVE, above the clearance OFFICIAL"

    with pytest.raises(ClearanceError, match=refusal):
        sink.write(report, run_dir / sink.file_name("evidence", report.level))
    assert list(run_dir.iterdir()) == []
    with pytest.raises(ClearanceError, match=refusal):
        sink.release(report)
    # The Parquet sink's in-memory path, which writes the bundle's members, refuses it too.
    with pytest.raises(ClearanceError, match=refusal):
        open_sink(ParquetSinkConfig(clearance=L.OFFICIAL)).write_member([above], "x.parquet")


def test_a_frame_relabelled_after_the_release_fails_its_seal_in_the_bundle(
    authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    sink = _bundle_sink(tmp_path, L.OFFICIAL)
    release = sink.release(report)
    frame = report.experiments[-1].results[-1]
    lowered = dataclasses.replace(frame.certificate, level=L.UNOFFICIAL)
    object.__setattr__(frame, "_certificate", lowered)
    handle = io.BytesIO()

    with pytest.raises(SealError):
        sink.render(report, release, handle)
    assert handle.getvalue() == b""


def test_a_bundle_member_is_what_the_parquet_sink_writes(
    authority: SidecarClient, tmp_path: Path
) -> None:
    report = make_suite_report(authority)
    sink = _bundle_sink(tmp_path, L.OFFICIAL)
    bundle = sink.write(report, tmp_path / "run" / sink.file_name("evidence", report.level))
    with tarfile.open(bundle.path, "r:gz") as archive:
        member = archive.extractfile("results/baseline.parquet")
        assert member is not None
        in_bundle = member.read()
    parquet = open_sink(ParquetSinkConfig(clearance=L.OFFICIAL, compression="zstd"))
    frames = report.experiments[0].results

    in_memory = parquet.write_member(frames, "results/baseline.parquet")
    on_disk = parquet.write_chunks(frames, tmp_path / "baseline.parquet")

    assert in_memory.content == in_bundle == on_disk.path.read_bytes()
    assert (in_memory.rows, in_memory.level, in_memory.format) == (40, L.OFFICIAL, "parquet")
    # Each write made its own release check with the seal authority.
    assert len(in_memory.seal_audit_ids) == len(frames)
    assert set(in_memory.seal_audit_ids).isdisjoint(on_disk.seal_audit_ids)
