"""What goes into a bundle besides its manifest: data files with their frames, and the record of
what ran (settings, prompts, plugins, packages, clearance plan, audit log, summary)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import importlib.metadata
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from elspeth.bundle._manifest import FrameRecord, member_name_problem
from elspeth.security import SecureDataFrame, SecurityLevel, redact_secrets
from elspeth.sinks import ParquetSinkConfig, Release, Sink, SinkError, SuiteReport

PARQUET_COMPRESSION: Final = "zstd"


@dataclass(frozen=True)
class DataFile:
    """A Parquet member: its bytes, rows, level (the join of its frames') and frames."""

    content: bytes
    rows: int
    level: SecurityLevel
    frames: tuple[FrameRecord, ...]


def data_files(
    report: SuiteReport, release: Release, clearance: SecurityLevel
) -> dict[str, DataFile]:
    """Every experiment's results and aggregates and every comparison, one Parquet file each.

    Each is written by a Parquet sink with the bundle's clearance, which checks every frame's
    clearance and seal again before writing it, exactly as for a Parquet file in the run
    directory; the manifest records the audit ids of ``release``, the check that released the
    report to the bundle.
    """
    groups: list[tuple[str, tuple[SecureDataFrame, ...]]] = []
    for experiment in report.experiments:
        groups.append((f"results/{experiment.name}.parquet", experiment.results))
        groups.extend(
            (f"aggregates/{experiment.name}/{aggregator}.parquet", (frame,))
            for aggregator, frame in experiment.aggregates.items()
        )
    groups.extend(
        (f"comparisons/{comparison.comparison}/{comparison.variant}.parquet", (comparison.frame,))
        for comparison in report.comparisons
    )
    parquet = Sink(ParquetSinkConfig(clearance=clearance, compression=PARQUET_COMPRESSION))
    files: dict[str, DataFile] = {}
    for name, frames in groups:
        problem = member_name_problem(name)
        if problem is not None:
            raise SinkError(name, f"cannot name a bundle member: {problem}")
        if name in files:
            raise SinkError(name, "two parts of the report would share this bundle member")
        files[name] = _data_file(name, frames, release, parquet)
    return files


def _data_file(
    name: str, frames: tuple[SecureDataFrame, ...], release: Release, parquet: Sink
) -> DataFile:
    member = parquet.write_member(frames, name)
    records = tuple(
        FrameRecord(
            frame_id=frame.frame_id,
            level=frame.security_level,
            digest=frame.digest.hex(),
            seal_audit_id=release.audit_ids[frame.frame_id],
        )
        for frame in frames
    )
    return DataFile(member.content, member.rows, member.level, records)


def record_files(report: SuiteReport, files: Mapping[str, DataFile]) -> dict[str, bytes]:
    """The JSON (and audit log) members: what ran, how, and with what."""
    settings = redact_secrets(report.settings)
    members = {
        "settings.json": _json_member("settings.json", settings),
        "prompts.json": _json_member("prompts.json", settings.get("prompt_packs", {})),
        "plugins.json": _json_member(
            "plugins.json",
            [
                {
                    "instance": plugin.instance,
                    "plugin": plugin.plugin,
                    "kind": plugin.kind,
                    "version": plugin.version,
                    "parameters": redact_secrets(plugin.parameters),
                }
                for plugin in report.plugins
            ],
        ),
        "packages.json": _json_member("packages.json", installed_packages()),
        "clearance_plan.json": _json_member(
            "clearance_plan.json", [entry.as_record() for entry in report.plan.entries]
        ),
        "summary.json": _json_member("summary.json", _summary(report, files)),
    }
    if report.audit_log is not None:
        try:
            members["audit.jsonl"] = report.audit_log.read_bytes()
        except OSError as error:
            raise SinkError(
                report.audit_log,
                f"the audit log cannot be read into the bundle ({error.strerror})",
            ) from None
    return members


def installed_packages() -> dict[str, str]:
    """Name → version of every installed distribution, sorted by name; where one is installed
    twice, the one first on the import path (the one imports use) wins."""
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(name, distribution.version)
    return dict(sorted(found.items()))


def _summary(report: SuiteReport, files: Mapping[str, DataFile]) -> dict[str, Any]:
    return {
        "suite": report.suite,
        "description": report.description,
        "run_id": report.run_id,
        "created_at": report.created_at,
        "classification": report.level,
        "experiments": [
            {
                "name": experiment.name,
                "baseline": experiment.baseline,
                "model": experiment.model,
                "prompt_pack": experiment.prompt_pack,
                "criteria": list(experiment.criteria),
                "summary": dict(experiment.summary),
            }
            for experiment in report.experiments
        ],
        "comparisons": [
            {
                "comparison": comparison.comparison,
                "baseline": comparison.baseline,
                "variant": comparison.variant,
            }
            for comparison in report.comparisons
        ],
        "data_files": sorted(files),
    }


def _json_member(name: str, value: Any) -> bytes:
    try:
        text = json.dumps(
            value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_plain
        )
    except (TypeError, ValueError) as error:
        raise SinkError(name, f"cannot be written as JSON ({error})") from None
    return (text + "\n").encode("utf-8")


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, decimal.Decimal | Path):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"a {type(value).__name__} value has no JSON form")
