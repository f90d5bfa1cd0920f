"""The bundle sink: a report sink whose output is a signed, classified, deterministic tar.gz."""

from __future__ import annotations

import datetime as dt
from typing import BinaryIO, ClassVar

from elspeth.bundle._archive import size_problem, write_archive
from elspeth.bundle._config import BundleConfig, Ed25519Signing
from elspeth.bundle._contents import data_files, record_files
from elspeth.bundle._manifest import (
    BUNDLE_FORMAT,
    DEFAULT_LIMITS,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleLimits,
    BundleManifest,
    FileRecord,
)
from elspeth.bundle._signing import Ed25519Signer, HmacSigner, Signer
from elspeth.security import SecurityLevel
from elspeth.sinks import Release, ReportSink, SinkError, SuiteReport


class BundleSink(ReportSink):
    """Writes ``bundle__<sink>__<LEVEL>.tar.gz``: results, aggregates and comparisons as Parquet,
    the record of what ran, and ``MANIFEST.json`` with its signature ``MANIFEST.sig``.

    The signing key is read when the sink is made, so a missing or exposed key stops the run
    before any data is read or any model is called.
    """

    format: ClassVar[str] = "bundle"
    suffix: ClassVar[str] = ".tar.gz"

    def __init__(self, config: BundleConfig, *, limits: BundleLimits = DEFAULT_LIMITS) -> None:
        super().__init__(config)
        signing = config.signing
        self._signer: Signer = (
            Ed25519Signer.from_file(signing.private_key_path)
            if isinstance(signing, Ed25519Signing)
            else HmacSigner.from_file(signing.key_path)
        )
        self._limits = limits

    def file_name(self, sink_name: str, level: SecurityLevel) -> str:
        return f"bundle__{sink_name}__{level.name}{self.suffix}"

    def _render(self, report: SuiteReport, release: Release, handle: BinaryIO) -> int:
        """Write the bundle; the rows it holds are those of every data file together."""
        mtime = _timestamp(report.created_at)
        files = data_files(report, release, self.clearance)
        members = {name: file.content for name, file in files.items()}
        members.update(record_files(report, files))
        problem = size_problem(members, self._limits)
        if problem is not None:
            raise SinkError(f"bundle of run {report.run_id}", f"too large to verify: {problem}")
        manifest = BundleManifest(
            format=BUNDLE_FORMAT,
            suite=report.suite,
            run_id=report.run_id,
            created_at=report.created_at,
            classification=release.level,
            files={
                name: FileRecord.from_content(
                    content,
                    classification=files[name].level if name in files else None,
                    frames=files[name].frames if name in files else (),
                )
                for name, content in members.items()
            },
            signing=self._signer.block,
        ).to_bytes()
        members[MANIFEST_NAME] = manifest
        members[SIGNATURE_NAME] = self._signer.sign(manifest)
        write_archive(members, handle, mtime)
        return sum(file.rows for file in files.values())


def _timestamp(created_at: str) -> int:
    """The archive's one mtime: the report's creation time (UTC if it names no zone)."""
    try:
        moment = dt.datetime.fromisoformat(created_at)
    except ValueError:
        raise SinkError(
            "bundle", f"the report's created_at {created_at!r} is not an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0, int(moment.timestamp()))
