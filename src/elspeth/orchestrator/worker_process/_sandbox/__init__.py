"""Worker sandbox primitives: what a plugin worker applies to itself before plugin code loads.

Standard library only (plus :mod:`elspeth.errors`): the worker imports this before numpy or
pyarrow, which start threads. :func:`harden_worker` runs the whole sequence; the pieces are
public for tests that open one lock on purpose. See ``docs/worker-sandbox.md``.
"""

from __future__ import annotations

from elspeth.orchestrator.worker_process._sandbox._descriptors import (
    close_inherited_descriptors,
    open_descriptors,
)
from elspeth.orchestrator.worker_process._sandbox._environment import (
    ALLOWED_ENVIRONMENT,
    SCRATCH_DIR_VARIABLE,
    SINGLE_THREAD_ENVIRONMENT,
    check_environment,
    pin_thread_pools,
    worker_environment,
)
from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError
from elspeth.orchestrator.worker_process._sandbox._harden import (
    SandboxPolicy,
    SandboxReport,
    enforce_full_sandbox,
    harden_worker,
    missing_locks,
)
from elspeth.orchestrator.worker_process._sandbox._landlock import (
    LandlockStatus,
    apply_landlock,
    default_read_exec_paths,
    default_read_only_paths,
    default_read_write_paths,
    kernel_abi,
)
from elspeth.orchestrator.worker_process._sandbox._limits import SandboxLimits, lower_limits
from elspeth.orchestrator.worker_process._sandbox._prctl import (
    has_no_new_privs,
    is_dumpable,
    set_no_new_privs,
    set_not_dumpable,
)
from elspeth.orchestrator.worker_process._sandbox._seccomp import (
    REFUSALS,
    SeccompStatus,
    apply_seccomp,
)
from elspeth.orchestrator.worker_process._sandbox._threads import (
    assert_single_threaded,
    thread_names,
)

__all__ = [
    "ALLOWED_ENVIRONMENT",
    "REFUSALS",
    "SCRATCH_DIR_VARIABLE",
    "SINGLE_THREAD_ENVIRONMENT",
    "LandlockStatus",
    "SandboxError",
    "SandboxLimits",
    "SandboxPolicy",
    "SandboxReport",
    "SeccompStatus",
    "apply_landlock",
    "apply_seccomp",
    "assert_single_threaded",
    "check_environment",
    "close_inherited_descriptors",
    "default_read_exec_paths",
    "default_read_only_paths",
    "default_read_write_paths",
    "enforce_full_sandbox",
    "harden_worker",
    "has_no_new_privs",
    "is_dumpable",
    "kernel_abi",
    "lower_limits",
    "missing_locks",
    "open_descriptors",
    "pin_thread_pools",
    "set_no_new_privs",
    "set_not_dumpable",
    "thread_names",
    "worker_environment",
]
