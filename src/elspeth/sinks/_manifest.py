"""The run directory's ``manifest.json``: the one place that says whether a run is complete.

:meth:`RunManifest.start` makes the run directory (0700) and writes the manifest with status
``running``; every :meth:`~RunManifest.add` rewrites it with the artifact listed; the runner ends
with :meth:`~RunManifest.finish` and the run's one :class:`~elspeth.outcome.RunStatus`. The
manifest is replaced atomically each time, so a crash at any point (even ``kill -9``) leaves
status ``running``: only a run that finished its work says ``complete`` or
``complete_with_errors``. :func:`verify_run` is what a consumer calls before trusting a run
directory. ``audit`` is the audit log's head when the run finished (its line count and last
line's hash, see :mod:`elspeth.audit`), so cutting lines from the log's end shows.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from elspeth.outcome import RunStatus
from elspeth.security import SecurityLevel, join_all
from elspeth.sinks._artifact import WrittenArtifact
from elspeth.sinks._errors import SinkError
from elspeth.sinks._files import atomic_private_file, file_digest_hex, make_private_directory

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = "elspeth-run-manifest-v1"


class RunManifest:
    """Records what a run wrote into its run directory, and how the run ended."""

    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.artifacts: list[WrittenArtifact] = []
        self.status = RunStatus.RUNNING
        self.reason: str | None = None
        self.audit: Mapping[str, Any] | None = None

    @classmethod
    def start(cls, run_dir: Path | str, run_id: str) -> RunManifest:
        """Create the run directory (0700) and a manifest saying ``running``."""
        manifest = cls(Path(run_dir), run_id)
        make_private_directory(manifest.run_dir)
        manifest._save()
        return manifest

    @property
    def path(self) -> Path:
        return self.run_dir / MANIFEST_NAME

    def path_for(self, name: str) -> Path:
        """Where an output called ``name`` goes: directly in the run directory."""
        if not name or Path(name).name != name or name in {".", "..", MANIFEST_NAME}:
            raise SinkError(self.run_dir / name, "an output name must be a plain file name")
        return self.run_dir / name

    def add(self, artifact: WrittenArtifact) -> None:
        """List a written artifact (it must be in the run directory)."""
        self._require_running()
        if artifact.path.parent.resolve() != self.run_dir.resolve():
            raise SinkError(artifact.path, f"is not in the run directory {self.run_dir}")
        self.artifacts.append(artifact)
        self._save()

    def finish(
        self,
        status: RunStatus,
        reason: str | None = None,
        *,
        audit: Mapping[str, Any] | None = None,
    ) -> Path:
        """Record how the run ended (the last thing a run does), why when not complete, and
        the head of its closed audit log."""
        self._require_running()
        if status is RunStatus.RUNNING:
            raise ValueError("a run cannot finish as running")
        self.status, self.reason, self.audit = status, reason, audit
        self._save()
        return self.path

    def _require_running(self) -> None:
        if self.status is not RunStatus.RUNNING:
            raise SinkError(self.path, f"the run is already {self.status.value}")

    def to_json(self) -> dict[str, Any]:
        levels = [artifact.level for artifact in self.artifacts]
        return {
            "format": MANIFEST_FORMAT,
            "run_id": self.run_id,
            "status": self.status.value,
            "reason": self.reason,
            "audit": None if self.audit is None else dict(self.audit),
            "updated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "classification": join_all(levels).name if levels else None,
            "artifacts": [
                {
                    "path": artifact.path.name,
                    "format": artifact.format,
                    "classification": artifact.level.name,
                    "rows": artifact.rows,
                    "blake3": artifact.digest_hex,
                }
                for artifact in self.artifacts
            ],
        }

    def _save(self) -> None:
        text = json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"
        with atomic_private_file(self.path) as handle:
            handle.write(text.encode("utf-8"))


def verify_run(run_dir: Path | str) -> dict[str, Any]:
    """The manifest of a finished run whose artifacts are all present and unchanged.

    Raises :class:`SinkError` naming the first problem: no manifest, a run that did not finish
    its work (``complete`` or ``complete_with_errors``), or an artifact missing or differing
    from its recorded digest.
    """
    path = Path(run_dir) / MANIFEST_NAME
    try:
        manifest: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SinkError(path, "no run manifest: the run never started or is not a run") from None
    except (OSError, ValueError) as error:
        raise SinkError(path, f"the run manifest cannot be read ({error})") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise SinkError(path, "not an Elspeth run manifest")
    status = manifest.get("status")
    if status not in {s.value for s in RunStatus if s.finished_whole}:
        reason = f": {manifest['reason']}" if manifest.get("reason") else ""
        raise SinkError(path, f"the run is {status}, not complete{reason}")
    for entry in manifest["artifacts"]:
        artifact = Path(run_dir) / entry["path"]
        if not artifact.is_file():
            raise SinkError(artifact, "listed in the manifest but missing")
        if file_digest_hex(artifact) != entry["blake3"]:
            raise SinkError(artifact, "differs from the digest recorded in the manifest")
        SecurityLevel.parse(entry["classification"])
    return manifest
