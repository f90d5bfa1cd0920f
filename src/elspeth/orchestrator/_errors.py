"""What the plugin runtime reports: every error names the plugin and the chunk it was working on.

A plugin's own error text is data at the worker's taint level, so it never appears in these
messages: they point to the run's private worker log instead.
"""

from __future__ import annotations

from elspeth.errors import ElspethError
from elspeth.security import SecurityError


class WorkerError(ElspethError):
    """A plugin call did not complete; ``plugin`` and ``chunk_id`` say which one."""

    def __init__(self, message: str, *, plugin: str, chunk_id: str | None) -> None:
        where = f"plugin {plugin!r}" + (f" on chunk {chunk_id!r}" if chunk_id is not None else "")
        super().__init__(f"{where}: {message}")
        self.plugin = plugin
        self.chunk_id = chunk_id


class PluginFailedError(WorkerError):
    """The plugin raised an exception (its text is in the private worker log)."""


class PluginTimeoutError(WorkerError):
    """The call ran past its wall-clock timeout; the worker's whole process group was killed."""


class WorkerCrashedError(WorkerError):
    """The worker process ended in the middle of a call; it is replaced."""


class WorkerProtocolError(WorkerError):
    """The worker sent something malformed, oversized or out of turn; it was killed."""


class WorkerStartError(ElspethError):
    """A worker did not come up (spawn failed, or it refused to start without its sandbox)."""


class ProxyRefusedError(SecurityError):
    """A proxy operation was refused: forged, foreign or revoked handle, stale version, or a level
    that would go down or past the plan. The worker that asked is killed; the run stops."""


class RuntimeLevelMismatchError(ElspethError):
    """Internal error: a frame's level at run time differs from what the clearance plan computed.

    The plan and the runtime apply the same rules, so this means a bug or tampering, never a
    configuration problem; it is raised before any data reaches a worker.
    """
