"""``elspeth audit verify``: a run directory's audit log against its chain and its manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from elspeth.audit._chain import ChainCheck, check_chain, check_head
from elspeth.errors import ConfigurationError

AUDIT_NAME: Final = "audit.jsonl"
MANIFEST_NAME: Final = "manifest.json"
MANIFEST_AUDIT_KEY: Final = "audit"
"""The key of the run manifest holding the log's head (``lines`` and ``last_hash``)."""


class AuditInputError(ConfigurationError):
    """The run directory cannot be examined at all (exit 2): missing, or no run manifest."""


def verify_run_audit(run_dir: Path | str) -> ChainCheck:
    """Check ``run_dir``'s audit log: every line's chain link, and the head the manifest
    recorded when the run finished. Problems are returned; a directory that is not a run
    raises :class:`AuditInputError`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AuditInputError(f"{run_dir}: not a directory")
    manifest_path = run_dir / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
        run_id = manifest["run_id"]
    except FileNotFoundError:
        raise AuditInputError(f"{manifest_path}: missing; {run_dir} is not a run") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AuditInputError(f"{manifest_path}: cannot be read ({error})") from None
    if not isinstance(run_id, str):
        raise AuditInputError(f"{manifest_path}: run_id is not a string")
    try:
        data = (run_dir / AUDIT_NAME).read_bytes()
    except FileNotFoundError:
        return ChainCheck(check_chain(b"", run_id).head, (f"{AUDIT_NAME}: missing",))
    except OSError as error:
        raise AuditInputError(
            f"{run_dir / AUDIT_NAME}: cannot be read ({error.strerror})"
        ) from None
    checked = check_chain(data, run_id)
    recorded = manifest.get(MANIFEST_AUDIT_KEY)
    problems = check_head(checked.head, recorded, where=MANIFEST_NAME)
    return ChainCheck(checked.head, (*checked.problems, *problems))
