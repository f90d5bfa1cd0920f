"""The worker's environment: an allow-list of names, built at spawn and checked at start."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType
from typing import Final

from elspeth.orchestrator.worker_process._sandbox._errors import SandboxError

#: Where the orchestrator tells a worker its private scratch directory.
SCRATCH_DIR_VARIABLE: Final = "ELSPETH_WORKER_SCRATCH_DIR"

#: One thread per native pool: pyarrow's CPU pool and OpenMP read ``OMP_NUM_THREADS``, pyarrow's
#: I/O pool ``ARROW_IO_THREADS``, numpy's OpenBLAS ``OPENBLAS_NUM_THREADS``, MKL and numexpr
#: their own. Every pool thread counts against ``RLIMIT_NPROC`` for the whole uid.
SINGLE_THREAD_ENVIRONMENT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "ARROW_IO_THREADS": "1",
    }
)

#: Every variable a worker may start with, and who puts it there. Anything else stops the worker.
ALLOWED_ENVIRONMENT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "PATH": "orchestrator (sudo replaces it with secure_path)",
        "LANG": "orchestrator: C.UTF-8",
        "LC_ALL": "orchestrator: C.UTF-8",
        "TMPDIR": "orchestrator: the worker's scratch directory",
        "HOME": "orchestrator: the scratch directory (sudo resets it to the target user's home)",
        SCRATCH_DIR_VARIABLE: "orchestrator: the only directory the worker may write",
        **{name: "orchestrator: pins a native thread pool" for name in SINGLE_THREAD_ENVIRONMENT},
        "SHELL": "sudo env_reset: the target user's shell",
        "TERM": "sudo env_reset: 'unknown' when the caller sets none",
        "MAIL": "sudo env_reset: the target user's mail spool",
        "USER": "sudo env_reset: the target user",
        "LOGNAME": "sudo env_reset: the target user",
        "SUDO_USER": "sudo: the invoking user",
        "SUDO_UID": "sudo: the invoking uid",
        "SUDO_GID": "sudo: the invoking gid",
        "SUDO_COMMAND": "sudo: the command line it ran",
        "SUDO_HOME": "sudo >= 1.9.16: the invoking user's home",
    }
)


def worker_environment(scratch_dir: str, *, path: str = "/usr/bin:/bin") -> dict[str, str]:
    """The exact environment the orchestrator passes as ``Popen(env=...)`` to a worker.

    sudo's ``env_reset`` drops names it does not keep (the thread counts and the scratch
    variable among them) unless the sudoers rule keeps them; :func:`pin_thread_pools` sets the
    thread counts again inside the worker, so they hold either way.
    """
    if not os.path.isabs(scratch_dir):
        raise SandboxError(
            f"the worker scratch directory must be an absolute path: {scratch_dir!r}"
        )
    environment = {
        "PATH": path,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": scratch_dir,
        "HOME": scratch_dir,
        SCRATCH_DIR_VARIABLE: scratch_dir,
        **SINGLE_THREAD_ENVIRONMENT,
    }
    check_environment(environment)
    return environment


def check_environment(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Raise :class:`SandboxError` naming every variable outside :data:`ALLOWED_ENVIRONMENT`.

    The message lists names only, never values (a stray variable is often a credential).
    Returns the sorted names present, for the sandbox report.
    """
    names = tuple(sorted(environ))
    refused = [name for name in names if name not in ALLOWED_ENVIRONMENT]
    if refused:
        raise SandboxError(
            f"the worker environment holds {len(refused)} variable(s) outside the allow-list: "
            f"{', '.join(refused)} (values not shown); the worker refuses to start. See "
            "docs/worker-sandbox.md for the allowed names"
        )
    return names


def pin_thread_pools(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set :data:`SINGLE_THREAD_ENVIRONMENT` so native libraries loaded later start one thread."""
    environ.update(SINGLE_THREAD_ENVIRONMENT)
