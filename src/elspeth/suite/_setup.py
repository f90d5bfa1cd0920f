"""What a run derives from its settings before it starts: checks, the worker runtime's
configuration, the run id and the directories it writes into."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from elspeth.config import SettingsError, Suite
from elspeth.errors import ConfigurationError
from elspeth.orchestrator import (
    ErrorPolicy,
    PluginInfo,
    PluginRuntime,
    RuntimeConfig,
    SpawnMode,
    WorkerLimits,
)
from elspeth.outcome import RunStatus
from elspeth.suite._validate import (
    LIMIT_NAMES,
    checks_declared_columns,
    chosen_limits,
    plugin_problems,
    template_problems,
)

if TYPE_CHECKING:
    from elspeth.sidecar import StandaloneDaemon

ROW_COLUMN: Final = "_row"
"""The column holding each row's ordinal; a template may not use it."""
RUN_ID: Final = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


@dataclass(frozen=True)
class RunOptions:
    output_dir: Path
    head: int | None = None
    resume: str | None = None
    state_dir: Path | None = None
    standalone_daemon: Callable[[], StandaloneDaemon] | None = None
    """A standalone daemon started ahead for this run (the command line starts it while it
    loads the settings): called once, where the run would start its own, which it then is."""


def describe_plugins(runtime: PluginRuntime, suite: Suite) -> dict[str, PluginInfo]:
    """Every plugin instance's declaration, its parameters validated (in a worker, no data);
    every problem in one :class:`~elspeth.config.SettingsError`."""
    infos, problems = plugin_problems(runtime, suite)
    if problems:
        raise SettingsError(problems)
    return infos


def check_templates(suite: Suite) -> None:
    """Template fields against the declared columns, before any data is read. Without declared
    columns (or with ``extra_columns: keep``) the run checks the header instead
    (:func:`check_header`)."""
    if not checks_declared_columns(suite):
        return
    columns = list(suite.settings.datasource.columns or {})
    problems = template_problems(suite, columns, reserved=(ROW_COLUMN,))
    if problems:
        raise SettingsError(problems)


def check_header(suite: Suite, columns: Sequence[str]) -> None:
    """Template fields against the columns the data has (its header, the first thing a run
    reads), before any model call; a :class:`~elspeth.config.SettingsError` names the
    template, the field and the columns there are."""
    problems = template_problems(suite, columns, reserved=(ROW_COLUMN,), header=True)
    if problems:
        raise SettingsError(problems)


def runtime_config(suite: Suite, log_dir: Path) -> RuntimeConfig:
    settings = suite.settings
    workers = settings.workers
    policies = {
        plugin.plugin: ErrorPolicy.SKIP if plugin.on_error == "skip" else ErrorPolicy.FAIL
        for plugin in settings.plugins.values()
    }
    limits = {
        plugin: WorkerLimits(
            **{name: chosen.get(name, getattr(workers, name)) for name in LIMIT_NAMES}
        )
        for plugin, chosen in chosen_limits(settings).items()
    }
    extra: dict[str, Any] = {}
    if workers.scratch_root is not None:
        extra["scratch_root"] = workers.scratch_root
    return RuntimeConfig(
        log_dir=log_dir,
        mode=SpawnMode.STANDALONE if settings.sidecar.mode == "standalone" else SpawnMode.SUDO,
        sudo=str(workers.sudo),
        worker_user=workers.user,
        pool_size=workers.pool_size,
        call_timeout=workers.call_timeout_seconds,
        plugin_dirs=tuple(p.resolve() for p in settings.plugin_dirs),
        error_policies=policies,
        allow_partial_sandbox=workers.allow_partial_sandbox,
        max_payload_bytes=workers.max_payload_bytes,
        memory_limit_bytes=workers.memory_limit_bytes,
        cpu_limit_seconds=workers.cpu_limit_seconds,
        file_size_limit_bytes=workers.file_size_limit_bytes,
        scratch_bytes=workers.scratch_bytes,
        max_in_flight_bytes=workers.max_in_flight_bytes,
        plugin_limits=limits,
        **extra,
    )


def check_resumable(run_id: str, output_dir: Path) -> None:
    if not RUN_ID.fullmatch(run_id):
        raise ConfigurationError(
            f"--resume {run_id!r} is not a run id (like 20261128T101500Z-3fa2c1)"
        )
    manifest = output_dir / run_id / "manifest.json"
    if not manifest.exists():
        raise ConfigurationError(f"cannot resume: no run {run_id!r} in {output_dir}")
    status = json.loads(manifest.read_text("utf-8")).get("status")
    if status in {s.value for s in RunStatus if s.finished_whole}:
        raise ConfigurationError(f"cannot resume: run {run_id!r} is already {status}")


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def prepare_directory(directory: Path, what: str) -> None:
    """Create ``directory`` (0700) if it is missing; refuse one this user cannot write into,
    naming the path and the reason, before anything is started."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise ConfigurationError(
            f"{what} {directory}: cannot be created ({error.strerror or error})"
        ) from None
    if not directory.is_dir():
        raise ConfigurationError(f"{what} {directory}: is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigurationError(f"{what} {directory}: is not writable by this user")
