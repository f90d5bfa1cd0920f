"""Suite-level outputs: what a report or a bundle is made from, and the sink that writes one.

A report sink sees the whole suite at once — every experiment's row frames and aggregates, every
baseline comparison, the clearance plan — so it is written at the join of all their levels and
releases nothing until every frame has passed its clearance and seal check.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from elspeth.datasources import ConfiguredLevel
from elspeth.outcome import RunStatus
from elspeth.security import (
    ClearancePlan,
    ComponentSpec,
    SecureDataFrame,
    SecurityLevel,
    join_all,
)
from elspeth.sinks._artifact import WrittenArtifact, write_artifact
from elspeth.sinks._errors import SinkError


class ReportSinkSettings(BaseModel):
    """What every suite-level sink's settings share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clearance: ConfiguredLevel

    def component_spec(self, name: str, inputs: tuple[str, ...]) -> ComponentSpec:
        """This sink as the clearance plan sees it: it reads everything in ``inputs``."""
        return ComponentSpec(name=name, kind="report", clearance=self.clearance, inputs=inputs)


@dataclass(frozen=True)
class ExperimentReport:
    """One experiment as a report shows it.

    ``results`` are its row frames (chunks with the same columns, in row order), after every row
    plugin. ``aggregates`` maps each aggregator instance to the frame it produced. ``summary``
    is the run's own account: rows, answers, errors, cached, resumed, retries, cost (a decimal
    string), prompt_tokens, completion_tokens, partial, stop_reason, early_stopped.
    """

    name: str
    baseline: bool
    model: str
    prompt_pack: str
    criteria: tuple[str, ...]
    summary: Mapping[str, Any]
    results: tuple[SecureDataFrame, ...]
    aggregates: Mapping[str, SecureDataFrame] = field(default_factory=dict)

    def results_data(self) -> pd.DataFrame:
        """Every row frame's data as one table."""
        datas = [frame.data for frame in self.results]
        return datas[0] if len(datas) == 1 else pd.concat(datas, ignore_index=True)


@dataclass(frozen=True)
class ComparisonReport:
    """What the comparison plugin instance ``comparison`` produced for ``variant`` against the
    suite's baseline."""

    comparison: str
    baseline: str
    variant: str
    frame: SecureDataFrame


@dataclass(frozen=True)
class PluginRecord:
    """A plugin instance as the suite used it, for the record of what ran."""

    instance: str
    plugin: str
    kind: str
    version: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class SuiteReport:
    """Everything a suite-level sink may show about one run.

    ``settings`` are the effective settings with secrets already redacted; ``artifacts`` the
    files the run had written when the report was made; ``status`` how the run ended (reports
    are written only for runs that finished their work, and show it in every banner);
    ``audit_log`` the run's audit log, flushed up to this point.
    """

    suite: str
    description: str
    run_id: str
    created_at: str
    experiments: tuple[ExperimentReport, ...]
    comparisons: tuple[ComparisonReport, ...]
    plan: ClearancePlan
    settings: Mapping[str, Any]
    plugins: tuple[PluginRecord, ...]
    artifacts: tuple[WrittenArtifact, ...]
    status: RunStatus
    audit_log: Path | None = None

    def frames(self) -> Iterator[SecureDataFrame]:
        """Every frame the report holds: results, aggregates, then comparisons."""
        for experiment in self.experiments:
            yield from experiment.results
            yield from experiment.aggregates.values()
        for comparison in self.comparisons:
            yield comparison.frame

    @property
    def level(self) -> SecurityLevel:
        """The report's classification: the join of every frame it holds."""
        return join_all(frame.security_level for frame in self.frames())

    @property
    def baseline(self) -> ExperimentReport:
        return next(e for e in self.experiments if e.baseline)


@dataclass(frozen=True)
class Release:
    """The outcome of a report's release check: its level, and the seal authority's audit id
    of each frame's check, by frame id."""

    level: SecurityLevel
    audit_ids: Mapping[str, int]


class ReportSink(abc.ABC):
    """A suite-level sink. Trusted code: it runs in the orchestrator, never in a worker.

    :meth:`write` checks every frame of the report against the sink's clearance (clearance, then
    seal) before anything touches the disk, then renders into a private file written atomically.
    Subclasses set ``format`` and ``suffix`` and implement :meth:`render`.
    """

    format: ClassVar[str]
    suffix: ClassVar[str]

    def __init__(self, config: ReportSinkSettings) -> None:
        self.config = config

    @property
    def clearance(self) -> SecurityLevel:
        return self.config.clearance

    def file_name(self, sink_name: str, level: SecurityLevel) -> str:
        """The output's file name in the run directory."""
        return f"report__{sink_name}{self.suffix}"

    def release(self, report: SuiteReport) -> Release:
        """Check every frame for this sink's clearance; raises before anything is written."""
        audit_ids = {frame.frame_id: frame.verify_for(self.clearance) for frame in report.frames()}
        return Release(report.level, audit_ids)

    def write(self, report: SuiteReport, destination: Path | str) -> WrittenArtifact:
        """Release and render ``report`` into ``destination``.

        Raises :class:`~elspeth.security.ClearanceError` or :class:`~elspeth.security.SealError`
        with nothing created if any frame may not go to this sink, and :class:`SinkError` with
        nothing left behind if rendering or writing fails.
        """
        destination = Path(destination)
        if destination.is_dir():
            raise SinkError(destination, "is a directory; give a file path")
        release = self.release(report)
        return write_artifact(
            destination,
            lambda handle: self.render(report, release, handle),
            level=release.level,
            format=self.format,
            seal_audit_ids=tuple(release.audit_ids.values()),
        )

    @abc.abstractmethod
    def render(self, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        """Write the output to ``handle``; return how many data rows it holds."""
