"""The one place a run writes its outputs: every file goes through a sink step of the plan,
into the manifest, and into the audit log as one ``output_written`` event of one shape."""

from __future__ import annotations

from collections.abc import Sequence

from elspeth.audit import OutputWritten
from elspeth.config import Suite
from elspeth.security import SecureDataFrame
from elspeth.sinks import ReportSink, RunManifest, SuiteReport, WrittenArtifact, open_sink
from elspeth.suite._audit import AuditLog
from elspeth.suite._plan import ReportStep, SinkStep


class OutputWriter:
    """Writes frames through frame sinks and the suite report through report sinks."""

    def __init__(self, suite: Suite, manifest: RunManifest, audit: AuditLog) -> None:
        self._suite = suite
        self._manifest = manifest
        self._audit = audit

    def write_frames(
        self, step: SinkStep, stem: str, frames: Sequence[SecureDataFrame]
    ) -> WrittenArtifact:
        """Write ``frames`` as one file named ``<stem>__<sink><suffix>``; the sink checks each
        frame's seal and its clearance before anything is created."""
        sink = open_sink(self._suite.frame_sink(step.sink))
        path = self._manifest.path_for(f"{stem}__{step.sink}{sink.suffix}")
        return self._record(step.component, step.sink, sink.write_chunks(frames, path))

    def write_report(
        self, step: ReportStep, sink: ReportSink, report: SuiteReport
    ) -> WrittenArtifact:
        path = self._manifest.path_for(sink.file_name(step.sink, report.level))
        return self._record(step.component, step.sink, sink.write(report, path))

    def _record(self, component: str, sink: str, artifact: WrittenArtifact) -> WrittenArtifact:
        self._manifest.add(artifact)
        self._audit.record(
            OutputWritten(
                component=component,
                sink=sink,
                output=artifact.path.name,
                format=artifact.format,
                level=artifact.level.name,
                rows=artifact.rows,
                seal_audit_ids=tuple(artifact.seal_audit_ids),
            )
        )
        return artifact
