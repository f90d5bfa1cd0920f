"""The whole hardening sequence, in the one order that works, and the report it produces."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Final

from elspeth.orchestrator.worker_process._sandbox._descriptors import close_inherited_descriptors
from elspeth.orchestrator.worker_process._sandbox._environment import (
    check_environment,
    pin_thread_pools,
)
from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError
from elspeth.orchestrator.worker_process._sandbox._landlock import (
    LandlockStatus,
    apply_landlock,
    default_read_exec_paths,
    default_read_only_paths,
    default_read_write_paths,
)
from elspeth.orchestrator.worker_process._sandbox._limits import SandboxLimits, lower_limits
from elspeth.orchestrator.worker_process._sandbox._prctl import (
    has_no_new_privs,
    is_dumpable,
    set_no_new_privs,
    set_not_dumpable,
)
from elspeth.orchestrator.worker_process._sandbox._seccomp import (
    SeccompStatus,
    apply_seccomp,
    load_library,
)
from elspeth.orchestrator.worker_process._sandbox._threads import assert_single_threaded

_DISABLED_BY_POLICY: Final = "disabled by the sandbox policy"


@dataclasses.dataclass(frozen=True)
class SandboxPolicy:
    """How one worker hardens itself.

    ``require_full`` must be true above ``OFFICIAL_SENSITIVE`` unless an audited override says
    otherwise: then a missing Landlock or seccomp stops the worker. ``landlock`` and ``seccomp``
    switch a lock off on purpose (tests of each lock alone); ``require_full`` refuses that too.
    """

    scratch_dir: str
    limits: SandboxLimits
    require_full: bool
    read_exec_paths: tuple[str, ...] = dataclasses.field(default_factory=default_read_exec_paths)
    read_only_paths: tuple[str, ...] = dataclasses.field(default_factory=default_read_only_paths)
    read_write_paths: tuple[str, ...] = dataclasses.field(default_factory=default_read_write_paths)
    keep_descriptors: tuple[int, ...] = (0, 1, 2)
    landlock: bool = True
    seccomp: bool = True

    def __post_init__(self) -> None:
        if not os.path.isabs(self.scratch_dir) or not os.path.isdir(self.scratch_dir):
            raise SandboxError(
                f"the worker scratch directory must be an existing absolute directory: "
                f"{self.scratch_dir!r}"
            )


@dataclasses.dataclass(frozen=True)
class SandboxReport:
    """What the worker applied, for the orchestrator's audit log (names and numbers only)."""

    environment_names: tuple[str, ...]
    closed_descriptors: tuple[int, ...]
    limits: Mapping[str, int]
    dumpable: bool
    no_new_privs: bool
    landlock: LandlockStatus
    seccomp: SeccompStatus

    @property
    def full(self) -> bool:
        return self.landlock.applied and self.seccomp.applied

    def as_dict(self) -> dict[str, object]:
        return {
            "environment_names": list(self.environment_names),
            "closed_descriptors": list(self.closed_descriptors),
            "limits": dict(self.limits),
            "dumpable": self.dumpable,
            "no_new_privs": self.no_new_privs,
            "landlock": self.landlock.as_dict(),
            "seccomp": self.seccomp.as_dict(),
            "full": self.full,
        }


def missing_locks(landlock: LandlockStatus, seccomp: SeccompStatus) -> tuple[str, ...]:
    """Each lock that is not in force, with the reason: ``()`` when both are."""
    statuses: dict[str, LandlockStatus | SeccompStatus] = {"Landlock": landlock, "seccomp": seccomp}
    return tuple(f"{name}: {s.reason}" for name, s in statuses.items() if not s.applied)


def enforce_full_sandbox(
    landlock: LandlockStatus, seccomp: SeccompStatus, *, require_full: bool
) -> None:
    """Raise :class:`SandboxError` when the policy requires both locks and one is missing."""
    missing = missing_locks(landlock, seccomp)
    if require_full and missing:
        raise SandboxError(
            "the full sandbox is required for this level but is not in force ("
            + "; ".join(missing)
            + "); only an audited override may run without it"
        )


def harden_worker(policy: SandboxPolicy, environ: Mapping[str, str] = os.environ) -> SandboxReport:
    """Apply the whole sandbox to this process, irreversibly, before any plugin code loads.

    The order matters: the environment is judged before anything else; the thread check comes
    before everything because Landlock restricts only the calling thread; descriptors, limits
    and process flags go before the locks; seccomp goes last, because it refuses the
    ``prctl`` that would undo non-dumpability. Raises :class:`SandboxError` on any failure.
    """
    environment_names = check_environment(environ)
    assert_single_threaded()
    pin_thread_pools()
    if policy.seccomp:
        load_library()  # dlopen before Landlock narrows what may be read
    closed = close_inherited_descriptors(policy.keep_descriptors)
    limits = lower_limits(policy.limits)
    set_not_dumpable()
    set_no_new_privs()
    landlock = (
        apply_landlock(
            policy.read_exec_paths,
            policy.scratch_dir,
            read_only_paths=policy.read_only_paths,
            read_write_paths=policy.read_write_paths,
        )
        if policy.landlock
        else LandlockStatus(applied=False, reason=_DISABLED_BY_POLICY)
    )
    seccomp = (
        apply_seccomp()
        if policy.seccomp
        else SeccompStatus(applied=False, reason=_DISABLED_BY_POLICY)
    )
    enforce_full_sandbox(landlock, seccomp, require_full=policy.require_full)
    return SandboxReport(
        environment_names=environment_names,
        closed_descriptors=closed,
        limits=limits,
        dumpable=is_dumpable(),
        no_new_privs=has_no_new_privs(),
        landlock=landlock,
        seccomp=seccomp,
    )
