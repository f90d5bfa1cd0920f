"""Runtime settings: how workers are spawned, limited, timed and where their logs go."""

from __future__ import annotations

import enum
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Final

from elspeth.errors import ConfigurationError
from elspeth.orchestrator import _wire
from elspeth.security import SecurityLevel

WORKER_MODULE: Final = "elspeth.orchestrator.worker_process"
REAPER_MODULE: Final = "elspeth.orchestrator.reaper"


class SpawnMode(enum.Enum):
    """``sudo``: workers run as another user (production); ``standalone``: as this user."""

    SUDO = "sudo"
    STANDALONE = "standalone"


class ErrorPolicy(enum.Enum):
    """What a failed, crashed or timed-out plugin call does to the run. Security refusals and
    protocol violations always fail the run."""

    FAIL = "fail"
    SKIP = "skip"


DEFAULT_MAX_PAYLOAD_BYTES: Final = 64 * 1024**2
"""Largest Arrow stream a worker may send in one payload. The orchestrator allocates a payload
only after its announced size passed this cap, so it bounds what one worker can make the
orchestrator hold (the 1,000,000-row benchmark sends back an 8 MiB column)."""

DEFAULT_MAX_IN_FLIGHT_BYTES: Final = 256 * 1024**2
"""Payload bytes the orchestrator holds from all the workers of a run at once: read or being
read and not yet consumed. Without it, each worker could make it hold a full payload at once."""

DEFAULT_MEMORY_LIMIT_BYTES: Final = 2 * 1024**3
DEFAULT_CPU_LIMIT_SECONDS: Final = 3600
DEFAULT_FILE_SIZE_LIMIT_BYTES: Final = 256 * 1024**2
DEFAULT_SCRATCH_BYTES: Final = 256 * 1024**2


@dataclass(frozen=True)
class WorkerLimits:
    """The per-plugin sandbox limits of a worker: ``RLIMIT_AS``, ``RLIMIT_CPU`` (CPU seconds over
    the worker's life), the largest file it may write (``file_size_limit_bytes``) and the most
    its scratch directory may hold (``scratch_bytes``). Workers with other limits than the
    runtime's defaults get pools of their own."""

    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES
    cpu_limit_seconds: int = DEFAULT_CPU_LIMIT_SECONDS
    file_size_limit_bytes: int = DEFAULT_FILE_SIZE_LIMIT_BYTES
    scratch_bytes: int = DEFAULT_SCRATCH_BYTES

    def __post_init__(self) -> None:
        bad = [
            f"{f.name} must be a positive integer, got {getattr(self, f.name)!r}"
            for f in fields(self)
            if not isinstance(getattr(self, f.name), int)
            or isinstance(getattr(self, f.name), bool)
            or getattr(self, f.name) <= 0
        ]
        if bad:
            raise ConfigurationError("invalid worker limits: " + "; ".join(bad))

    @property
    def fsize_rlimit(self) -> int:
        """``RLIMIT_FSIZE``: no single file may be larger than the scratch directory may hold,
        so the kernel refuses such a file at once instead of the scratch watcher later."""
        return min(self.file_size_limit_bytes, self.scratch_bytes)


def _default_scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / f"elspeth-workers-{os.getuid()}"


@dataclass(frozen=True)
class RuntimeConfig:
    """Every knob of the plugin runtime; paths are configurable so it runs as any user.

    ``log_dir`` receives one private file per worker with its stderr (data at the worker's
    level). ``scratch_root`` must be writable by the worker's user; each worker creates its own
    ``worker-<token>`` directory in it. ``allow_partial_sandbox`` is the audited override that
    lets levels above ``OFFICIAL_SENSITIVE`` run without Landlock or seccomp.
    """

    log_dir: Path
    mode: SpawnMode = SpawnMode.STANDALONE
    python: str = sys.executable
    sudo: str = "/usr/bin/sudo"
    worker_user: str = "appplugin"
    worker_path: str = "/usr/bin:/bin"
    scratch_root: Path = field(default_factory=_default_scratch_root)
    worker_cwd: str = "/"
    pool_size: int = 2
    call_timeout: float = 120.0
    startup_timeout: float = 60.0
    shutdown_grace: float = 2.0
    kill_timeout: float = 10.0
    max_message_bytes: int = _wire.DEFAULT_MAX_MESSAGE_BYTES
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_in_flight_bytes: int = DEFAULT_MAX_IN_FLIGHT_BYTES
    stderr_cap_bytes: int = 1024 * 1024
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES
    cpu_limit_seconds: int = DEFAULT_CPU_LIMIT_SECONDS
    open_files_limit: int = 256
    file_size_limit_bytes: int = DEFAULT_FILE_SIZE_LIMIT_BYTES
    scratch_bytes: int = DEFAULT_SCRATCH_BYTES
    processes_per_worker: int = 16
    plugin_dirs: tuple[Path, ...] = ()
    error_policies: Mapping[str, ErrorPolicy] = field(default_factory=dict)
    plugin_limits: Mapping[str, WorkerLimits] = field(default_factory=dict)
    allow_partial_sandbox: bool = False

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be positive, got {getattr(self, name)!r}"
            for name in (
                "pool_size",
                "call_timeout",
                "startup_timeout",
                "shutdown_grace",
                "kill_timeout",
                "max_payload_bytes",
                "stderr_cap_bytes",
                "memory_limit_bytes",
                "cpu_limit_seconds",
                "open_files_limit",
                "file_size_limit_bytes",
                "scratch_bytes",
                "processes_per_worker",
            )
            if not getattr(self, name) > 0
        ]
        if self.max_in_flight_bytes < self.max_payload_bytes:
            problems.append(
                f"max_in_flight_bytes ({self.max_in_flight_bytes}) must be at least "
                f"max_payload_bytes ({self.max_payload_bytes}): a payload the cap allows must "
                "fit when no other is in flight"
            )
        if self.max_message_bytes < _wire.MIN_MAX_MESSAGE_BYTES:
            problems.append(
                f"max_message_bytes must be at least {_wire.MIN_MAX_MESSAGE_BYTES}, "
                f"got {self.max_message_bytes}"
            )
        if self.max_message_bytes >= 2**32:
            problems.append("max_message_bytes must fit the 4-byte length prefix")
        problems.extend(
            f"{name} must be an absolute path, got {value!r}"
            for name, value in (
                ("python", self.python),
                ("sudo", self.sudo),
                ("scratch_root", str(self.scratch_root)),
                ("worker_cwd", self.worker_cwd),
                ("log_dir", str(self.log_dir)),
                *((f"plugin_dirs[{i}]", str(d)) for i, d in enumerate(self.plugin_dirs)),
            )
            if not os.path.isabs(value)
        )
        problems.extend(
            f"error_policies[{name!r}] must be an ErrorPolicy, got {policy!r}"
            for name, policy in self.error_policies.items()
            if not isinstance(policy, ErrorPolicy)
        )
        problems.extend(
            f"plugin_limits[{name!r}] must be WorkerLimits, got {limits!r}"
            for name, limits in self.plugin_limits.items()
            if not isinstance(limits, WorkerLimits)
        )
        if problems:
            raise ConfigurationError("invalid plugin runtime settings: " + "; ".join(problems))
        object.__setattr__(self, "error_policies", MappingProxyType(dict(self.error_policies)))
        object.__setattr__(self, "plugin_limits", MappingProxyType(dict(self.plugin_limits)))

    @property
    def default_limits(self) -> WorkerLimits:
        """The limits of every worker whose plugin has none of its own in ``plugin_limits``."""
        return WorkerLimits(
            memory_limit_bytes=self.memory_limit_bytes,
            cpu_limit_seconds=self.cpu_limit_seconds,
            file_size_limit_bytes=self.file_size_limit_bytes,
            scratch_bytes=self.scratch_bytes,
        )

    def limits_for(self, plugin: str) -> WorkerLimits:
        return self.plugin_limits.get(plugin, self.default_limits)

    @property
    def nproc_limit(self) -> int:
        """``RLIMIT_NPROC`` for every worker: it counts the threads of all processes of the
        workers' uid, so it covers every pool that could exist (one per level and set of limits)
        and the catalog worker."""
        limit_sets = len({self.default_limits, *self.plugin_limits.values()})
        return self.processes_per_worker * (self.pool_size * len(SecurityLevel) * limit_sets + 1)

    def worker_command(self) -> list[str]:
        """The exact argv of a worker: what the sudoers rule allows, in sudo mode."""
        command = [self.python, "-I", "-m", WORKER_MODULE]
        return self._as_worker_user(command)

    def reaper_command(self, pgid: int, scratch_dir: str) -> list[str]:
        return self._as_worker_user(
            [self.python, "-I", "-m", REAPER_MODULE, str(pgid), scratch_dir]
        )

    def scratch_watch_command(self, pgid: int, scratch_dir: str, limit: int) -> list[str]:
        """The reaper in its watching mode: it must read the worker's scratch directory, so it
        runs as the worker's user, and the reaper's sudoers rule already allows any arguments."""
        return self._as_worker_user(
            [self.python, "-I", "-m", REAPER_MODULE, "watch", str(pgid), scratch_dir, str(limit)]
        )

    def error_policy(self, plugin: str) -> ErrorPolicy:
        return self.error_policies.get(plugin, ErrorPolicy.FAIL)

    def _as_worker_user(self, command: list[str]) -> list[str]:
        if self.mode is SpawnMode.SUDO:
            return [self.sudo, "-n", "-u", self.worker_user, *command]
        return command
