"""Sinks through the real standalone daemon: release checks, atomicity, privacy, marking."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from elspeth.datasources import (
    ColumnType,
    CsvDatasourceConfig,
    JsonlDatasourceConfig,
    ParquetDatasourceConfig,
    open_datasource,
)
from elspeth.outcome import RunStatus
from elspeth.security import (
    ClearanceError,
    SealError,
    SecureDataFrame,
    SecurityLevel,
    canonical_digest,
)
from elspeth.sidecar import SidecarClient
from elspeth.sinks import (
    CsvSinkConfig,
    JsonlSinkConfig,
    ParquetSinkConfig,
    RunManifest,
    SinkError,
    neutralise_formula,
    open_sink,
    verify_run,
)

pytestmark = pytest.mark.integration

L = SecurityLevel
SINKS = {
    "csv": CsvSinkConfig(clearance="OFFICIAL_SENSITIVE"),
    "jsonl": JsonlSinkConfig(clearance="OFFICIAL_SENSITIVE"),
    "parquet": ParquetSinkConfig(clearance="OFFICIAL_SENSITIVE"),
}
COLUMNS = {
    "id": ColumnType.INTEGER,
    "text": ColumnType.STRING,
    "score": ColumnType.FLOAT,
    "ok": ColumnType.BOOLEAN,
}


def _data() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "text": ["plain", 'comma, "quoted"\nnewline', "caf\u00e9"],
            "score": [0.1 + 0.2, 1e-300, -2.5],
            "ok": [True, False, True],
        }
    )


def _frame(authority: SidecarClient, level: SecurityLevel = L.OFFICIAL) -> SecureDataFrame:
    return SecureDataFrame.create_from_datasource(_data(), level, authority)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


# --- round trips ---------------------------------------------------------------------------


def test_parquet_round_trip_keeps_the_canonical_digest(
    tmp_path: Path, authority: SidecarClient
) -> None:
    frame = _frame(authority)
    artifact = open_sink(SINKS["parquet"]).write(frame, tmp_path / "out.parquet")
    assert (artifact.rows, artifact.level, artifact.format) == (3, L.OFFICIAL, "parquet")
    assert len(artifact.digest_hex) == 64
    assert artifact.seal_audit_ids[0] > 0
    source = ParquetDatasourceConfig(
        path=artifact.path, classification="OFFICIAL", clearance="OFFICIAL"
    )
    loaded = open_datasource(source).load(authority)
    assert loaded.digest == frame.digest == canonical_digest(frame.data)
    metadata = pq.read_schema(artifact.path).metadata
    assert metadata[b"elspeth.classification"] == b"OFFICIAL"


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_text_round_trip_keeps_the_values(
    kind: str, tmp_path: Path, authority: SidecarClient
) -> None:
    artifact = open_sink(SINKS[kind]).write(_frame(authority), tmp_path / f"out.{kind}")
    model = CsvDatasourceConfig if kind == "csv" else JsonlDatasourceConfig
    source = model(
        path=artifact.path, classification="OFFICIAL", clearance="OFFICIAL", columns=COLUMNS
    )
    loaded = open_datasource(source).load(authority).data
    pd.testing.assert_frame_equal(loaded, _data(), check_dtype=False)


def test_chunks_write_one_file_at_the_join_of_their_levels(
    tmp_path: Path, authority: SidecarClient
) -> None:
    frames = [_frame(authority, L.OFFICIAL), _frame(authority, L.OFFICIAL_SENSITIVE)]
    artifact = open_sink(SINKS["jsonl"]).write_chunks(frames, tmp_path / "all.jsonl")
    assert (artifact.rows, artifact.level) == (6, L.OFFICIAL_SENSITIVE)
    lines = artifact.path.read_text("utf-8").splitlines()
    assert json.loads(lines[0]) == {
        "_elspeth": {"classification": "OFFICIAL_SENSITIVE", "format": "elspeth-jsonl-v1"}
    }
    assert len(lines) == 7


# --- marking -------------------------------------------------------------------------------


def test_every_format_is_marked_with_the_classification(
    tmp_path: Path, authority: SidecarClient
) -> None:
    frame = _frame(authority, L.OFFICIAL_SENSITIVE)
    csv_path = open_sink(SINKS["csv"]).write(frame, tmp_path / "o.csv").path
    assert csv_path.read_text("utf-8").splitlines()[0] == "# classification: OFFICIAL_SENSITIVE"
    jsonl_path = open_sink(SINKS["jsonl"]).write(frame, tmp_path / "o.jsonl").path
    header = json.loads(jsonl_path.read_text("utf-8").splitlines()[0])
    assert header["_elspeth"]["classification"] == "OFFICIAL_SENSITIVE"
    parquet_path = open_sink(SINKS["parquet"]).write(frame, tmp_path / "o.parquet").path
    metadata = pq.ParquetFile(parquet_path).metadata.metadata
    assert metadata[b"elspeth.classification"] == b"OFFICIAL_SENSITIVE"


# --- formula injection ---------------------------------------------------------------------


def test_csv_neutralises_formulas_by_default(tmp_path: Path, authority: SidecarClient) -> None:
    data = pd.DataFrame(
        {
            "=HYPERLINK(1)": ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\ry", "safe", None],
            "n": [-1, 2, -3, 4, 5, 6, 7, 8],
        }
    )
    frame = SecureDataFrame.create_from_datasource(data, L.OFFICIAL, authority)
    path = open_sink(SINKS["csv"]).write(frame, tmp_path / "f.csv").path
    source = CsvDatasourceConfig(path=path, classification="OFFICIAL", clearance="OFFICIAL")
    loaded = open_datasource(source).load(authority).data
    assert list(loaded.columns) == ["'=HYPERLINK(1)", "n"]
    assert loaded["'=HYPERLINK(1)"].tolist()[:7] == [
        "'=1+1",
        "'+SUM(A1)",
        "'-2+3",
        "'@cmd",
        "'\tx",
        "'\ry",
        "safe",
    ]
    assert pd.isna(loaded["'=HYPERLINK(1)"].iloc[7])
    assert loaded["n"].tolist()[:3] == ["-1", "2", "-3"], "numbers are never rewritten"

    off = CsvSinkConfig(clearance="OFFICIAL", neutralise_formulas=False)
    raw = open_sink(off).write(frame, tmp_path / "raw.csv").path.read_bytes().decode("utf-8")
    assert "\r\n=1+1," in raw
    assert '\r\n"\ry",6\r\n' in raw, "a bare CR is quoted so the row stays one record"


def test_neutralise_formula_unit() -> None:
    assert neutralise_formula("=A1") == "'=A1"
    assert neutralise_formula("a=1") == "a=1"
    assert neutralise_formula("") == ""


# --- release checks ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_frame_above_the_clearance_is_refused_and_nothing_is_created(
    kind: str, tmp_path: Path, authority: SidecarClient
) -> None:
    frame = _frame(authority, L.OFFICIAL_SENSITIVE)
    sink = open_sink(SINKS[kind].model_copy(update={"clearance": L.OFFICIAL}))
    out = tmp_path / "out"
    with pytest.raises(ClearanceError, match="above the clearance OFFICIAL"):
        sink.write(frame, out / f"r.{kind}")
    assert not out.exists()


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_relabelled_frame_fails_the_seal_and_nothing_is_created(
    kind: str, tmp_path: Path, authority: SidecarClient
) -> None:
    frame = _frame(authority, L.OFFICIAL_SENSITIVE)
    lowered = dataclasses.replace(frame.certificate, level=L.UNOFFICIAL)
    object.__setattr__(frame, "_certificate", lowered)
    sink = open_sink(SINKS[kind].model_copy(update={"clearance": L.OFFICIAL}))
    with pytest.raises(SealError):
        sink.write(frame, tmp_path / f"r.{kind}")
    assert _leftovers(tmp_path) == []


def test_serialisation_failure_mid_write_leaves_nothing(
    tmp_path: Path, authority: SidecarClient
) -> None:
    data = pd.DataFrame({"id": [1, 2], "blob": [None, b"\x00\x01"]})
    frame = SecureDataFrame.create_from_datasource(data, L.OFFICIAL, authority)
    with pytest.raises(SinkError) as caught:
        open_sink(SINKS["jsonl"]).write(frame, tmp_path / "r.jsonl")
    assert str(caught.value) == (
        f"{tmp_path / 'r.jsonl'}: JSONL cannot hold this data: a bytes value has no JSON form"
    )
    assert _leftovers(tmp_path) == []


def test_mismatched_chunks_fail_after_writing_began_and_leave_nothing(
    tmp_path: Path, authority: SidecarClient
) -> None:
    other = SecureDataFrame.create_from_datasource(pd.DataFrame({"x": [1]}), L.OFFICIAL, authority)
    for kind in ("csv", "jsonl", "parquet"):
        with pytest.raises(SinkError, match="every frame written to one file"):
            open_sink(SINKS[kind]).write_chunks([_frame(authority), other], tmp_path / kind)
    assert _leftovers(tmp_path) == []


def test_crash_inside_the_csv_writer_leaves_nothing_unit_with_monkeypatch(
    tmp_path: Path, authority: SidecarClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = pd.DataFrame.to_csv

    def write_half_then_crash(self: pd.DataFrame, handle: object, **options: object) -> None:
        original(self.head(1), handle, **options)  # type: ignore[call-overload]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", write_half_then_crash)
    destination = tmp_path / "r.csv"
    destination.write_text("previous complete result\n")
    with pytest.raises(
        SinkError,
        match="writing failed \\(OSError: No space left on device\\); no file was left behind",
    ):
        open_sink(SINKS["csv"]).write(_frame(authority), destination)
    assert _leftovers(tmp_path) == ["r.csv"]
    assert destination.read_text() == "previous complete result\n"


# --- privacy -------------------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_outputs_are_private_whatever_the_umask(tmp_path: Path, authority: SidecarClient) -> None:
    frame = _frame(authority)
    for kind, config in SINKS.items():
        path = open_sink(config).write(frame, tmp_path / "new" / "deeper" / f"o.{kind}").path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "deeper").stat().st_mode) == 0o700
    manifest = RunManifest.start(tmp_path / "run", "run-1")
    assert stat.S_IMODE(manifest.run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(manifest.path.stat().st_mode) == 0o600


# --- run manifest --------------------------------------------------------------------------


def test_manifest_complete_run(tmp_path: Path, authority: SidecarClient) -> None:
    manifest = RunManifest.start(tmp_path / "run", "run-1")
    with pytest.raises(SinkError, match="the run is running, not complete"):
        verify_run(manifest.run_dir)
    frame = _frame(authority, L.OFFICIAL_SENSITIVE)
    for kind, config in SINKS.items():
        manifest.add(open_sink(config).write(frame, manifest.path_for(f"results.{kind}")))
    manifest.finish(RunStatus.COMPLETE)
    verified = verify_run(manifest.run_dir)
    assert verified["status"] == "complete"
    assert verified["classification"] == "OFFICIAL_SENSITIVE"
    assert [entry["path"] for entry in verified["artifacts"]] == [
        "results.csv",
        "results.jsonl",
        "results.parquet",
    ]
    (manifest.run_dir / "results.csv").write_text("tampered\n")
    with pytest.raises(SinkError, match="differs from the digest recorded in the manifest"):
        verify_run(manifest.run_dir)


def test_manifest_stopped_run(tmp_path: Path, authority: SidecarClient) -> None:
    manifest = RunManifest.start(tmp_path / "run", "run-2")
    manifest.add(open_sink(SINKS["csv"]).write(_frame(authority), manifest.path_for("a.csv")))
    manifest.finish(RunStatus.STOPPED, "budget limit reached after 3 rows")
    recorded = json.loads(manifest.path.read_text())
    assert recorded["status"] == "stopped"
    assert recorded["artifacts"][0]["classification"] == "OFFICIAL"
    with pytest.raises(
        SinkError, match="the run is stopped, not complete: budget limit reached after 3 rows"
    ):
        verify_run(manifest.run_dir)
    with pytest.raises(SinkError, match="already stopped"):
        manifest.finish(RunStatus.COMPLETE)
    with pytest.raises(SinkError, match="plain file name"):
        manifest.path_for("../escape.csv")
