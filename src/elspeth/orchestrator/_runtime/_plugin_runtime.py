"""The plugin runtime: pools keyed by plan level, one RPC loop per call, fail-closed errors.

``PluginRuntime.run`` is the whole life of one plugin call: parameters checked by a worker that
never sees data, the runtime level checked against the plan, a worker taken from the pool of that
level, handles issued, the worker's proxy calls served until it answers, handles revoked, and the
worker returned, or killed with its whole group and replaced. Calls on different workers run
concurrently (:meth:`PluginRuntime.run_many`).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from elspeth.audit import ProxyRefused
from elspeth.errors import ConfigurationError
from elspeth.orchestrator import _wire
from elspeth.orchestrator._arrow import frame_to_ipc, ipc_to_table, table_to_frame
from elspeth.orchestrator._errors import (
    PluginFailedError,
    PluginTimeoutError,
    RuntimeLevelMismatchError,
    WorkerCrashedError,
    WorkerError,
    WorkerProtocolError,
)
from elspeth.orchestrator._runtime._config import (
    ErrorPolicy,
    RuntimeConfig,
    SpawnMode,
    WorkerLimits,
)
from elspeth.orchestrator._runtime._in_flight import InFlightBytes, InFlightLimitError
from elspeth.orchestrator._runtime._ipc_stream import (
    CheckedStream,
    StreamExpectation,
    StreamRefusedError,
    agrees,
)
from elspeth.orchestrator._runtime._pool import WorkerPool
from elspeth.orchestrator._runtime._process import WorkerProcess
from elspeth.orchestrator._runtime._proxies import PROXY_METHODS, AuditSink, ProxyService, Step
from elspeth.orchestrator.reaper._scratch_watch import EXIT_FULL, EXIT_STOPPED, EXIT_UNREADABLE
from elspeth.plugins import PluginKind
from elspeth.security import (
    ClearanceError,
    LevelParseError,
    SealAuthority,
    SecureDataFrame,
    SecurityError,
    SecurityLevel,
    join,
    join_all,
    may_read,
)
from elspeth.sidecar._client._standalone import remove_leftovers

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("elspeth.orchestrator")

_SKIPPABLE: Final = (PluginFailedError, PluginTimeoutError, WorkerCrashedError)
"""Failures a plugin's ``skip`` error policy may absorb; refusals and protocol errors never."""

WORKER_SCRATCH_NAME: Final = re.compile(r"worker-[0-9a-f]{16,64}")
"""A worker's scratch directory in the scratch root (as the reaper accepts them)."""

_CATALOG_LEVEL: Final = SecurityLevel.UNOFFICIAL
"""The catalog worker describes plugins and validates parameters; it never receives data."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A plugin's declaration, as described by a worker that imported it."""

    name: str
    version: str
    kind: PluginKind
    clearance: SecurityLevel
    output_floor: SecurityLevel | None
    min_proxies: int
    max_proxies: int | None
    parameters: Mapping[str, Any] | None
    parameter_schema: Mapping[str, Any]
    min_memory_limit_bytes: int = 0
    """The plugin's own floor on its address-space limit; it can only make the plan refuse."""

    @classmethod
    def from_wire(cls, info: Mapping[str, Any]) -> PluginInfo:
        try:
            floor = info["output_floor"]
            high = info["max_proxies"]
            result = cls(
                name=str(info["name"]),
                version=str(info["version"]),
                kind=PluginKind(info["kind"]),
                clearance=SecurityLevel.parse(info["clearance"]),
                output_floor=SecurityLevel.parse(floor) if floor is not None else None,
                min_proxies=int(info["min_proxies"]),
                max_proxies=int(high) if high is not None else None,
                parameters=info["parameters"],
                parameter_schema=info["parameter_schema"],
                min_memory_limit_bytes=_non_negative(info["min_memory_limit_bytes"]),
            )
        except (KeyError, TypeError, ValueError, LevelParseError) as error:
            raise _wire.ProtocolError(f"malformed plugin description: {error}") from None
        return result

    def output_level(self, incoming: SecurityLevel) -> SecurityLevel:
        """What the plan computes for this plugin's output: incoming joined with the floor."""
        return join(incoming, self.output_floor) if self.output_floor else incoming


@dataclass(frozen=True, slots=True)
class PluginCall:
    """One call for :meth:`PluginRuntime.run_many`."""

    plugin: str
    parameters: Mapping[str, Any]
    frames: Sequence[SecureDataFrame]
    chunk_id: str
    plan_level: SecurityLevel


@dataclass(frozen=True, slots=True)
class StepResult:
    """The frames after a call, one per proxy, in order; ``produced`` holds only new frames.

    ``error`` is set when the plugin's ``skip`` policy absorbed a failure: then ``frames`` are the
    inputs, unchanged, and ``produced`` is empty.
    """

    plugin: str
    chunk_id: str
    frames: tuple[SecureDataFrame, ...]
    produced: tuple[SecureDataFrame, ...]
    error: WorkerError | None = None

    @property
    def skipped(self) -> bool:
        return self.error is not None


@dataclass
class _Pools:
    by_level: dict[tuple[SecurityLevel, WorkerLimits], WorkerPool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class PluginRuntime:
    """Runs plugins in sandboxed worker processes over frames sealed by ``authority``."""

    def __init__(
        self,
        authority: SealAuthority,
        config: RuntimeConfig,
        *,
        on_audit: AuditSink | None = None,
    ) -> None:
        self._authority = authority
        self._config = config
        if config.mode is SpawnMode.STANDALONE:
            # Scratch directories of workers whose orchestrator was killed outright; in sudo mode
            # they belong to the workers' user and the reaper removes them.
            remove_leftovers(config.scratch_root, WORKER_SCRATCH_NAME, what="worker scratch dir")
        self._proxies = ProxyService(on_audit)
        self._in_flight = InFlightBytes(config.max_in_flight_bytes)
        self._pools = _Pools()
        self._catalog = WorkerPool(_CATALOG_LEVEL, 1, self._spawner(config.default_limits))
        self._descriptions: dict[tuple[str, str], PluginInfo] = {}
        self._request_ids = itertools.count(1)
        self._closed = False

    @property
    def config(self) -> RuntimeConfig:
        return self._config

    @property
    def in_flight_bytes(self) -> int:
        """Payload bytes read, or being read, from workers and not yet consumed."""
        return self._in_flight.held

    def __enter__(self) -> PluginRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- pools -----------------------------------------------------------------------------

    def pool(self, level: SecurityLevel, limits: WorkerLimits | None = None) -> WorkerPool:
        """The pool whose workers receive data at exactly ``level`` and run under ``limits``
        (the runtime's default limits when not given: plugins with limits of their own, in
        ``plugin_limits``, get pools of their own)."""
        key = (level, limits if limits is not None else self._config.default_limits)
        with self._pools.lock:
            if self._closed:
                raise RuntimeError("the plugin runtime is closed")
            pool = self._pools.by_level.get(key)
            if pool is None:
                pool = WorkerPool(level, self._config.pool_size, self._spawner(key[1]))
                self._pools.by_level[key] = pool
            return pool

    def close(self) -> None:
        """Stop every worker (polite, then terminate, then kill); idempotent."""
        with self._pools.lock:
            self._closed = True
            pools = [self._catalog, *self._pools.by_level.values()]
        for pool in pools:
            pool.close()

    def _spawner(self, limits: WorkerLimits) -> Callable[[SecurityLevel], WorkerProcess]:
        def spawn(level: SecurityLevel) -> WorkerProcess:
            return WorkerProcess(self._config, level, limits)

        return spawn

    # --- describing plugins (before any data moves) ------------------------------------------

    def describe(self, plugin: str, parameters: Mapping[str, Any] | None = None) -> PluginInfo:
        """The plugin's declaration; with ``parameters``, also validates them.

        Raises :class:`~elspeth.errors.ConfigurationError` for an unknown plugin or bad
        parameters, naming them. The work happens in a worker that never receives data, so
        third-party plugin code is not imported into the orchestrator.
        """
        key = (plugin, json.dumps(parameters, sort_keys=True, default=repr))
        cached = self._descriptions.get(key)
        if cached is not None:
            return cached
        worker = self._catalog.acquire(self._config.startup_timeout)
        deadline = worker.call_deadline(self._config.call_timeout)
        try:
            request_id = next(self._request_ids)
            worker.send(
                deadline,
                "describe",
                id=request_id,
                plugin=plugin,
                params=dict(parameters) if parameters is not None else None,
            )
            answer = worker.receive(deadline)
            if answer.op != "described" or answer["id"] != request_id:
                raise _wire.ProtocolError(f"expected 'described', got {answer.op!r}")
            worker.warmed = True
            if not answer["ok"]:
                self._catalog.release(worker)
                raise ConfigurationError(answer["error"] or f"plugin {plugin!r} is unusable")
            info = PluginInfo.from_wire(answer["info"])
        except ConfigurationError:
            raise
        except (_wire.ProtocolError, TimeoutError, OSError) as error:
            self._catalog.replace(worker)
            raise WorkerProtocolError(
                f"describing failed ({type(error).__name__}: {error})", plugin=plugin, chunk_id=None
            ) from None
        self._catalog.release(worker)
        self._descriptions[key] = info
        return info

    # --- running plugins --------------------------------------------------------------------

    def run_many(self, calls: Sequence[PluginCall]) -> list[StepResult]:
        """Run calls concurrently on as many workers as the pools allow; results in order."""
        if not calls:
            return []
        config = self._config
        pools = {(call.plan_level, config.limits_for(call.plugin)) for call in calls}
        threads = config.pool_size * len(pools)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="plugin-call") as pool:
            futures = [
                pool.submit(
                    self.run,
                    c.plugin,
                    c.parameters,
                    c.frames,
                    chunk_id=c.chunk_id,
                    plan_level=c.plan_level,
                )
                for c in calls
            ]
            return [future.result() for future in futures]

    def run(
        self,
        plugin: str,
        parameters: Mapping[str, Any],
        frames: Sequence[SecureDataFrame],
        *,
        chunk_id: str,
        plan_level: SecurityLevel,
    ) -> StepResult:
        """Run ``plugin`` over ``frames`` (one proxy each) in a worker of pool ``plan_level``.

        ``plan_level`` is what the clearance plan computed as the stage's incoming level; the
        frames' joined level must equal it (else :class:`RuntimeLevelMismatchError`, before any
        data moves). Raises a :class:`WorkerError` naming plugin and chunk when the call fails and
        the plugin's error policy is ``fail``; :class:`~elspeth.security.SecurityError` always.
        """
        info = self.describe(plugin, parameters)
        self._check_call(info, frames, chunk_id, plan_level)
        pool = self.pool(plan_level, self._config.limits_for(plugin))
        worker = pool.acquire(self._config.call_timeout)
        worker.taint = join(worker.taint, plan_level) if worker.taint else plan_level
        if worker.taint > pool.level:
            pool.replace(worker)
            raise RuntimeLevelMismatchError(
                f"worker tainted {worker.taint} would run in the {pool.level} pool"
            )
        step = self._proxies.open_step(
            worker_id=worker.worker_id,
            plugin=plugin,
            chunk_id=chunk_id,
            clearance=info.clearance,
            frames=frames,
            floor=info.output_level(worker.taint),
            output_level=info.output_level(plan_level),
        )
        completed = False
        try:
            self._execute(pool, worker, step, parameters)
            completed = True
        except _SKIPPABLE as error:
            if self._config.error_policy(plugin) is not ErrorPolicy.SKIP:
                raise
            log.warning("%s; skipped by the plugin's error policy", error)
            return StepResult(plugin, chunk_id, tuple(frames), (), error)
        finally:
            self._proxies.close_step(step, keep_outputs=completed)
        produced = tuple(frame for frame in step.frames if frame not in step.inputs)
        return StepResult(plugin, chunk_id, step.frames, produced)

    def _check_call(
        self,
        info: PluginInfo,
        frames: Sequence[SecureDataFrame],
        chunk_id: str,
        plan_level: SecurityLevel,
    ) -> None:
        count = len(frames)
        if count < info.min_proxies or (info.max_proxies is not None and count > info.max_proxies):
            raise ConfigurationError(
                f"plugin {info.name!r} ({info.kind.value}) takes {info.min_proxies} to "
                f"{info.max_proxies or 'any number of'} frames per call, got {count}"
            )
        if any(frame.authority is not self._authority for frame in frames):
            raise SecurityError(f"plugin {info.name!r}: a frame comes from another seal authority")
        runtime_level = join_all(frame.security_level for frame in frames)
        if runtime_level != plan_level:
            raise RuntimeLevelMismatchError(
                f"internal error: plugin {info.name!r} on chunk {chunk_id!r} would receive "
                f"{runtime_level} data but the clearance plan computed {plan_level} for it"
            )
        if not may_read(info.clearance, plan_level):
            raise ClearanceError(
                f"plugin {info.name!r} is cleared to {info.clearance} but would receive "
                f"{plan_level} data"
            )

    def _execute(
        self, pool: WorkerPool, worker: WorkerProcess, step: Step, parameters: Mapping[str, Any]
    ) -> None:
        timeout = self._config.call_timeout
        first_imports = not worker.warmed
        deadline = worker.call_deadline(timeout)
        where = {"plugin": step.plugin, "chunk_id": step.chunk_id}
        request_id = next(self._request_ids)
        try:
            worker.send(
                deadline,
                "run",
                id=request_id,
                plugin=step.plugin,
                params=dict(parameters),
                chunk=step.chunk_id,
                handles=step.handles,
            )
            while True:
                message = worker.receive(deadline)
                if message.op == "proxy":
                    self._answer(worker, step, message, deadline)
                elif message.op == "result" and message["id"] == request_id:
                    worker.warmed = True
                    break
                elif message.op == "error":
                    raise _wire.ProtocolError(f"the worker reported {message['kind']!r}")
                else:
                    raise _wire.ProtocolError(f"unexpected {message.op!r} during a call")
        except TimeoutError:
            pool.replace(worker)
            allowance = (
                f" (and the {self._config.startup_timeout}s start-up timeout its first imports "
                "were allowed)"
                if first_imports
                else ""
            )
            raise PluginTimeoutError(
                f"no answer within the {timeout}s call timeout{allowance}; the worker's process "
                "group was killed and the worker replaced",
                **where,
            ) from None
        except InFlightLimitError as error:
            pool.replace(worker)
            raise PluginFailedError(
                f"{error} would take the payload bytes in flight from all workers past the "
                f"run's limit of {_size(error.limit)} (max_in_flight_bytes); the payload was not "
                "read and the worker was replaced",
                **where,
            ) from None
        except (_wire.ChannelClosedError, ConnectionError):
            pool.replace(worker)
            limit = _limit_killed_by(worker)
            cause = f"{limit}: the worker was killed" if limit else "the worker exited mid-call"
            raise WorkerCrashedError(
                f"{cause} (status {worker.returncode}) and was replaced; its "
                f"stderr is in {worker.stderr.path}",
                **where,
            ) from None
        except _wire.ProtocolError as error:
            pool.replace(worker)
            raise WorkerProtocolError(f"{error}; the worker was killed", **where) from None
        except (SecurityError, RuntimeLevelMismatchError):
            pool.replace(worker)
            raise
        if not message["ok"]:
            pool.release(worker)
            kind = message["error"]
            limit = _limit_failure(worker.limits, kind)
            raise PluginFailedError(
                f"{limit + ' and ' if limit else ''}failed ({kind}); its error text is in "
                f"{worker.stderr.path} (classified {worker.level.name})",
                **where,
            )
        pool.release(worker)

    def _answer(
        self, worker: WorkerProcess, step: Step, message: _wire.Message, deadline: float
    ) -> None:
        seq = message["seq"]
        size = message[_wire.PAYLOAD_FIELD]
        call = (worker.worker_id, message["method"], message["handle"], message["args"])
        try:
            # Judged before the payload is counted, allocated or read: a refusal of the call
            # itself wins over the limit on bytes in flight.
            expectation = self._proxies.expect_data(*call, size) if size else None
            with self._in_flight.hold(size):
                data = None
                if expectation is not None:
                    data = _decode_data(
                        step, _receive_stream(worker, step, size, expectation, deadline)
                    )
                reply = self._proxies.call(*call, data)
        except SecurityError as refusal:
            log.error("refused: %s", refusal)
            method = message["method"]
            self._proxies.audit(
                ProxyRefused(
                    plugin=step.plugin,
                    chunk_id=step.chunk_id,
                    worker=worker.worker_id,
                    # A name the worker made up is the worker's text: not for the audit log.
                    method=method
                    if isinstance(method, str) and method in PROXY_METHODS
                    else "unknown",
                    error=type(refusal).__name__,
                )
            )
            worker.send_with_payload(
                deadline, "proxy_reply", b"", seq=seq, ok=False, value=None, error=str(refusal)
            )
            raise
        out = frame_to_ipc(reply.data) if reply.data is not None else b""
        worker.send_with_payload(
            deadline, "proxy_reply", out, seq=seq, ok=True, value=reply.value, error=None
        )


def _non_negative(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"min_memory_limit_bytes {value!r} is not a non-negative int")
    return value


def _limit_failure(limits: WorkerLimits, kind: object) -> str | None:
    """The sandbox limit a failure kind reported by the worker names, as a sentence."""
    if kind == "address_space_limit":
        return (
            f"exceeded its address-space limit of {_size(limits.memory_limit_bytes)} "
            "(RLIMIT_AS, memory_limit_bytes)"
        )
    if kind == "file_size_limit":
        return _file_limit(limits)
    return None


def _limit_killed_by(worker: WorkerProcess) -> str | None:
    """The sandbox limit (or the scratch watcher) that ended the worker, as a sentence."""
    limits, returncode = worker.limits, worker.returncode
    scratch = _scratch_limit(worker)
    if scratch is not None:
        return scratch
    if returncode == -signal.SIGXCPU:
        return (
            f"exceeded its CPU-time limit of {limits.cpu_limit_seconds} s "
            "(RLIMIT_CPU, cpu_limit_seconds)"
        )
    if returncode == -signal.SIGXFSZ:
        return _file_limit(limits)
    return None


def _file_limit(limits: WorkerLimits) -> str:
    """``RLIMIT_FSIZE`` is the smaller of two settings: the sentence names the one in force."""
    if limits.scratch_bytes < limits.file_size_limit_bytes:
        return (
            f"exceeded its scratch limit of {_size(limits.scratch_bytes)} with one file "
            "(RLIMIT_FSIZE, scratch_bytes)"
        )
    return (
        f"exceeded its file-size limit of {_size(limits.file_size_limit_bytes)} "
        "(RLIMIT_FSIZE, file_size_limit_bytes)"
    )


def _scratch_limit(worker: WorkerProcess) -> str | None:
    """What the worker's scratch watcher reported, if it ended before the worker was stopped."""
    watcher = worker.scratch_watcher
    if watcher is None or watcher.status == EXIT_STOPPED:
        return None
    limit = f"its scratch limit of {_size(worker.limits.scratch_bytes)} (scratch_bytes)"
    if watcher.status == EXIT_FULL:
        return f"exceeded {limit}: its scratch directory held at least {watcher.output} bytes"
    if watcher.status == EXIT_UNREADABLE:
        return f"hid part of its scratch directory ({watcher.output}) from the watcher of {limit}"
    return (
        f"its scratch watcher ended (status {watcher.status}: {watcher.output or 'no output'}), "
        f"so nothing enforced {limit}"
    )


def _size(count: int) -> str:
    """``count`` bytes in the largest binary unit that divides it (``2 GiB``), else in bytes."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def _receive_stream(
    worker: WorkerProcess,
    step: Step,
    size: int,
    expectation: StreamExpectation,
    deadline: float,
) -> CheckedStream:
    try:
        return worker.receive_stream(deadline, size, expectation)
    except StreamRefusedError as error:
        raise step.refuse(f"data refused before its body was read: {error}") from None


def _decode_data(step: Step, stream: CheckedStream) -> pd.DataFrame:
    invalid = "data is not a valid Arrow IPC stream"
    try:
        table = ipc_to_table(stream.payload)
    except ValueError:
        raise step.refuse(invalid) from None
    if not agrees(stream, table):
        raise step.refuse("data decodes to other rows or another schema than its headers announced")
    try:
        return table_to_frame(table)
    except ValueError:
        raise step.refuse(invalid) from None
