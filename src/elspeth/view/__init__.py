"""``elspeth view``: a run's results side by side, served read-only to a browser on this machine.

Runs in the user's own process (no daemon, no workers): it reads a finished run's output files,
checked against the digests in its manifest, and never writes. See docs/reports.md, "Reviewing a
run in the viewer".
"""

from __future__ import annotations

from elspeth.view._errors import ViewError
from elspeth.view._run import RunOutputs, open_run
from elspeth.view._server import (
    CONTENT_SECURITY_POLICY,
    TOKEN_HEADER,
    ViewServer,
    choose_token,
    viewed_runs,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "TOKEN_HEADER",
    "RunOutputs",
    "ViewError",
    "ViewServer",
    "choose_token",
    "open_run",
    "viewed_runs",
]
