"""Resource limits, lowered (soft and hard) so the plugin cannot raise them again."""

from __future__ import annotations

import dataclasses
import resource
from types import MappingProxyType
from typing import Final

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Hard limits for one worker.

    ``nproc`` is checked by the kernel against the number of processes *and threads* of every
    process of the worker's uid, not of this worker: size it for the whole pool (workers times
    threads per worker, plus the children plugins may fork). Root ignores it.
    ``cpu_seconds`` is CPU time, not wall time, over the worker's whole life; the orchestrator's
    per-call timeout covers hangs. Its hard limit is :data:`CPU_GRACE_SECONDS` above the soft one,
    so the kernel sends ``SIGXCPU`` (which names the limit in the worker's exit status) before
    the ``SIGKILL`` it sends at the hard limit.
    """

    nproc: int
    address_space_bytes: int
    cpu_seconds: int
    open_files: int
    file_size_bytes: int
    core_bytes: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SandboxError(
                    f"sandbox limit {field.name} must be a non-negative integer, got {value!r}"
                )
        for name in ("nproc", "address_space_bytes", "cpu_seconds", "open_files"):
            if getattr(self, name) == 0:
                raise SandboxError(f"sandbox limit {name} is 0: the worker could not run at all")


CPU_GRACE_SECONDS: Final = 2
"""Hard ``RLIMIT_CPU`` minus soft: a plugin that ignores ``SIGXCPU`` is killed this much later."""

#: Field of :class:`SandboxLimits` -> the ``RLIMIT_*`` it sets.
LIMIT_RESOURCES: Final = MappingProxyType(
    {
        "nproc": resource.RLIMIT_NPROC,
        "address_space_bytes": resource.RLIMIT_AS,
        "cpu_seconds": resource.RLIMIT_CPU,
        "open_files": resource.RLIMIT_NOFILE,
        "file_size_bytes": resource.RLIMIT_FSIZE,
        "core_bytes": resource.RLIMIT_CORE,
    }
)


def lower_limits(limits: SandboxLimits) -> dict[str, int]:
    """Set soft = hard = the requested value, or the current hard limit if that is lower (for
    ``cpu_seconds``, hard = soft + :data:`CPU_GRACE_SECONDS`).

    Never raises a limit. Returns the value now in force for each field, read back from the
    kernel; raises :class:`SandboxError` if a read-back differs.
    """
    applied: dict[str, int] = {}
    for name, rlimit in LIMIT_RESOURCES.items():
        requested: int = getattr(limits, name)
        _, hard = resource.getrlimit(rlimit)
        value = requested if hard == resource.RLIM_INFINITY else min(requested, hard)
        new_hard = value
        if name == "cpu_seconds":
            grace = value + CPU_GRACE_SECONDS
            new_hard = grace if hard == resource.RLIM_INFINITY else min(grace, hard)
        try:
            resource.setrlimit(rlimit, (value, new_hard))
        except (OSError, ValueError) as error:
            raise SandboxError(f"could not lower {name} to {value}: {error}") from error
        if resource.getrlimit(rlimit) != (value, new_hard):
            raise SandboxError(f"{name} reads back {resource.getrlimit(rlimit)}, not {value}")
        applied[name] = value
    return applied
