"""Suite-level outputs: what a report or a bundle is made from, and the sink that writes one.

A report sink sees the whole suite at once — every experiment's row frames and aggregates, every
baseline comparison, the clearance plan — so it is written at the join of all their levels and
releases nothing until every frame has passed its clearance and seal check.
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, ClassVar, NoReturn, final

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
    references: tuple[str, ...] = ()
    """The datasource's reference-answer columns (``target``)."""

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


_HOW_TO_GET_A_RELEASE = (
    "a Release is issued only by ReportSink.release(report), the clearance and seal check of "
    "every frame; it cannot be made, copied or changed"
)


@final
class Release:
    """The outcome of a report's release check: its level, and the seal authority's audit id
    of each frame's check, by frame id.

    Only :meth:`ReportSink.release` makes one, after every frame of the report passed its
    clearance and seal check; it holds the sink that issued it and the report and frames it was
    issued for, and that sink renders only with a release it issued for that very report.
    Constructing one (``Release(...)``) raises :class:`TypeError`.
    """

    __slots__ = ("__weakref__", "_frames", "_report", "_sink", "audit_ids", "level")

    level: SecurityLevel
    audit_ids: Mapping[str, int]
    _sink: ReportSink
    _report: SuiteReport
    _frames: tuple[SecureDataFrame, ...]

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(_HOW_TO_GET_A_RELEASE)

    def __init_subclass__(cls, **kwargs: object) -> NoReturn:
        raise TypeError("Release cannot be subclassed")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(_HOW_TO_GET_A_RELEASE)

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(_HOW_TO_GET_A_RELEASE)

    def __reduce__(self) -> NoReturn:
        raise TypeError(_HOW_TO_GET_A_RELEASE)

    def __copy__(self) -> NoReturn:
        raise TypeError(_HOW_TO_GET_A_RELEASE)

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError(_HOW_TO_GET_A_RELEASE)

    def __repr__(self) -> str:
        level = getattr(self, "level", None)
        frames = len(getattr(self, "audit_ids", ()))
        return f"Release(level={level.name if level else None}, frames={frames})"


def _issue_release(
    sink: ReportSink,
    report: SuiteReport,
    frames: tuple[SecureDataFrame, ...],
    audit_ids: Mapping[str, int],
) -> Release:
    """A release of ``frames`` of ``report`` to ``sink``; call it only once every frame passed
    its check."""
    release = object.__new__(Release)
    for name, value in (
        ("level", report.level),
        ("audit_ids", MappingProxyType(dict(audit_ids))),
        ("_sink", sink),
        ("_report", report),
        ("_frames", frames),
    ):
        object.__setattr__(release, name, value)
    return release


class ReportSink(abc.ABC):
    """A suite-level sink. Trusted code: it runs in the orchestrator, never in a worker.

    :meth:`write` checks every frame of the report against the sink's clearance (clearance, then
    seal) before anything touches the disk, then renders into a private file written atomically.
    :meth:`render` refuses a :class:`Release` this sink did not issue for that very report, so
    there is no way to a rendering that skips the check. Subclasses set ``format`` and ``suffix``
    and implement :meth:`_render` (never :meth:`render`).
    """

    format: ClassVar[str]
    suffix: ClassVar[str]

    def __init__(self, config: ReportSinkSettings) -> None:
        self.config = config
        self._issued: weakref.WeakSet[Release] = weakref.WeakSet()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "render" in cls.__dict__ or "release" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} may not override ReportSink.render or ReportSink.release, "
                f"which check every release; implement _render instead"
            )

    @property
    def clearance(self) -> SecurityLevel:
        return self.config.clearance

    def file_name(self, sink_name: str, level: SecurityLevel) -> str:
        """The output's file name in the run directory."""
        return f"report__{sink_name}{self.suffix}"

    @final
    def release(self, report: SuiteReport) -> Release:
        """Check every frame for this sink's clearance; raises before anything is written.

        The release returned is good for :meth:`render` of this report by this sink only.
        """
        frames = tuple(report.frames())
        audit_ids = {frame.frame_id: frame.verify_for(self.clearance) for frame in frames}
        release = _issue_release(self, report, frames, audit_ids)
        self._issued.add(release)
        return release

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

    @final
    def render(self, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        """Write the output to ``handle``; return how many data rows it holds.

        Raises :class:`SinkError` naming this sink, with nothing written, unless ``release`` is
        one this sink issued (:meth:`release`) for this very report, holding the same frames.
        """
        self._require_issued(report, release)
        return self._render(report, release, handle)

    @abc.abstractmethod
    def _render(self, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        """Write the output to ``handle``; return how many data rows it holds. Called only by
        :meth:`render`, with a release this sink issued for ``report``."""

    def _require_issued(self, report: SuiteReport, release: Release) -> None:
        name = type(self).__name__
        if not isinstance(release, Release) or release not in self._issued:
            raise SinkError(
                name,
                f"refuses to render with a release it did not issue; {_HOW_TO_GET_A_RELEASE}, "
                f"and is good only for the sink that issued it (use {name}.write)",
            )
        if release._sink is not self or release._report is not report:
            raise SinkError(name, "refuses to render a report with a release issued for another")
        frames = tuple(report.frames())
        if len(frames) != len(release._frames) or any(
            frame is not released for frame, released in zip(frames, release._frames, strict=True)
        ):
            raise SinkError(
                name,
                "refuses to render: the report's frames changed since its release check",
            )
