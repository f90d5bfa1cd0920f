"""Proxy handles: what a plugin holds instead of a frame, and the rules every call obeys.

A handle is a random token, scoped to the step (one plugin call on one worker) it was issued for,
and revoked when that step ends. Each handle carries a version that every replacement bumps.
:data:`PROXY_METHODS` is the whole policy: the methods that exist, the arguments each takes, and
the handler that applies the level rules. A refusal names the plugin and chunk. The daemon's
audit ids of each view's seal check and of each derived frame go to the run's audit log
through ``on_audit``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from elspeth.audit import AuditEvent, FrameDerived, WorkerViewVerified
from elspeth.orchestrator._column_update import MisalignedUpdateError, with_columns
from elspeth.orchestrator._errors import ProxyRefusedError, RuntimeLevelMismatchError
from elspeth.orchestrator._runtime._ipc_stream import StreamExpectation
from elspeth.security import (
    LevelParseError,
    SecureDataFrame,
    SecurityLevel,
    join,
    may_read,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class _Proxy:
    handle: str
    step: Step
    frame: SecureDataFrame
    version: int = 1


@dataclass
class Step:
    """One plugin call on one worker: the frames it was given and the level its output must have.

    ``floor`` is the join of the worker's taint (every level it was ever given) and the plugin's
    output floor; every frame the step produces is at least that, and exactly ``output_level``
    (what the clearance plan computed), or the runtime reports an internal error.
    """

    worker_id: str
    plugin: str
    chunk_id: str
    clearance: SecurityLevel
    inputs: tuple[SecureDataFrame, ...]
    floor: SecurityLevel
    output_level: SecurityLevel
    proxies: list[_Proxy] = field(default_factory=list)
    superseded: list[SecureDataFrame] = field(default_factory=list)

    @property
    def handles(self) -> list[str]:
        return [proxy.handle for proxy in self.proxies]

    @property
    def frames(self) -> tuple[SecureDataFrame, ...]:
        """The current frame behind each handle, in the order the plugin received them."""
        return tuple(proxy.frame for proxy in self.proxies)

    def refuse(self, reason: str) -> ProxyRefusedError:
        return ProxyRefusedError(f"plugin {self.plugin!r} on chunk {self.chunk_id!r}: {reason}")


AuditSink = Callable[[AuditEvent], None]
"""Where the runtime's audit events go (the run's audit log records them)."""

_Check = Callable[[object], bool]
_Handler = Callable[["ProxyService", _Proxy, Mapping[str, Any], "pd.DataFrame | None"], "Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: plain values for the plugin, and data when the method returns a view."""

    value: dict[str, Any]
    data: pd.DataFrame | None = None


@dataclass(frozen=True, slots=True)
class MethodRule:
    """One proxy method: its exact arguments, whether it carries data in, and its handler."""

    args: Mapping[str, _Check]
    takes_data: bool
    handler: _Handler


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_level_name(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 64


class ProxyService:
    """Issues, checks and revokes handles; applies :data:`PROXY_METHODS`. Thread-safe, given a
    thread-safe seal authority (the sidecar client is)."""

    def __init__(self, on_audit: AuditSink | None = None) -> None:
        self._lock = threading.Lock()
        self._proxies: dict[str, _Proxy] = {}
        self._steps: dict[str, Step] = {}
        self._on_audit = on_audit

    def audit(self, event: AuditEvent) -> None:
        if self._on_audit is not None:
            self._on_audit(event)

    def open_step(
        self,
        *,
        worker_id: str,
        plugin: str,
        chunk_id: str,
        clearance: SecurityLevel,
        frames: Sequence[SecureDataFrame],
        floor: SecurityLevel,
        output_level: SecurityLevel,
    ) -> Step:
        step = Step(worker_id, plugin, chunk_id, clearance, tuple(frames), floor, output_level)
        with self._lock:
            if worker_id in self._steps:
                raise RuntimeError(f"worker {worker_id} already has an open step")
            for frame in frames:
                proxy = _Proxy(secrets.token_urlsafe(24), step, frame)
                step.proxies.append(proxy)
                self._proxies[proxy.handle] = proxy
            self._steps[worker_id] = step
        return step

    def close_step(self, step: Step, *, keep_outputs: bool) -> None:
        """Revoke every handle of ``step``; retire the intermediate frames it superseded, and
        its outputs too when the call failed (``keep_outputs`` false)."""
        with self._lock:
            for handle in step.handles:
                self._proxies.pop(handle, None)
            self._steps.pop(step.worker_id, None)
        unused = list(step.superseded)
        if not keep_outputs:
            unused.extend(frame for frame in step.frames if frame not in step.inputs)
        if unused:
            unused[0].authority.retire([frame.frame_id for frame in unused])

    def call(
        self,
        worker_id: str,
        method: str,
        handle: str,
        args: Mapping[str, Any],
        data: pd.DataFrame | None,
    ) -> Reply:
        """Apply one proxy call from ``worker_id``; raise :class:`ProxyRefusedError` if refused."""
        proxy, rule = self._resolve(worker_id, method, handle, args, has_data=data is not None)
        return rule.handler(self, proxy, args, data)

    def expect_data(
        self, worker_id: str, method: str, handle: str, args: Mapping[str, Any], size: int
    ) -> StreamExpectation:
        """What the ``size``-byte stream a proxy call announces may hold, decided (or the call
        refused) before any of it is read.

        A column update has exactly the rows of the frame it updates. A whole new frame may have
        as many rows as every frame of the step together, or more only when its stream spends
        at least a byte per row: without a bound, a stream of all-null columns could announce
        any number of rows in no bytes at all, which decoding would then allocate.
        """
        proxy, _ = self._resolve(worker_id, method, handle, args, has_data=True)
        if args["update"]:
            rows, _ = proxy.frame.shape
            return StreamExpectation(rows, f"a column update of a {rows}-row frame")
        step_rows = sum(frame.shape[0] for frame in proxy.step.frames)
        return StreamExpectation(
            max(step_rows, size),
            f"a new frame from a step of {step_rows} rows, in a stream of {size} bytes,",
        )

    def _resolve(
        self,
        worker_id: str,
        method: str,
        handle: str,
        args: Mapping[str, Any],
        *,
        has_data: bool,
    ) -> tuple[_Proxy, MethodRule]:
        """The proxy and rule of a call that passes every check but the handler's own."""
        with self._lock:
            step = self._steps.get(worker_id)
            if step is None:
                raise ProxyRefusedError(f"worker {worker_id} called {method!r} outside any step")
            proxy = self._proxies.get(handle)
        rule = PROXY_METHODS.get(method)
        if rule is None:
            raise step.refuse(f"unknown proxy method {method[:64]!r}")
        if proxy is None:
            raise step.refuse(f"{method}: unknown or revoked proxy handle")
        if proxy.step is not step:
            raise step.refuse(f"{method}: proxy handle was issued to another worker or step")
        if set(args) != set(rule.args) or not all(check(args[k]) for k, check in rule.args.items()):
            raise step.refuse(f"{method}: arguments must be exactly {sorted(rule.args)}")
        if rule.takes_data != has_data:
            raise step.refuse(f"{method}: data {'missing' if rule.takes_data else 'not expected'}")
        return proxy, rule

    # --- handlers ----------------------------------------------------------------------------

    def _get_view(self, proxy: _Proxy, args: Mapping[str, Any], data: pd.DataFrame | None) -> Reply:
        step, frame = proxy.step, proxy.frame
        audit_id = frame.verify_for(step.clearance)
        self.audit(
            WorkerViewVerified(
                plugin=step.plugin,
                chunk_id=step.chunk_id,
                worker=step.worker_id,
                frame_id=frame.frame_id,
                level=frame.security_level.name,
                audit_id=audit_id,
            )
        )
        return Reply({"version": proxy.version}, frame.data)

    def _replace_data(
        self, proxy: _Proxy, args: Mapping[str, Any], data: pd.DataFrame | None
    ) -> Reply:
        assert data is not None
        step = proxy.step
        if args["based_on_version"] != proxy.version:
            raise step.refuse(
                f"replace_data based on version {args['based_on_version']}, but the frame is at "
                f"version {proxy.version}: fetch a new view first"
            )
        if args["update"]:
            try:
                data = with_columns(proxy.frame.data, data)
            except MisalignedUpdateError as error:
                raise step.refuse(f"replace_data: {error}") from None
        parents = list(dict.fromkeys((*step.inputs, proxy.frame), None))
        floor = join(step.floor, proxy.frame.security_level)
        new = SecureDataFrame.derive_from(parents, data, floor=floor)
        return self._advance(proxy, new, parents, "replace_data")

    def _uplift(self, proxy: _Proxy, args: Mapping[str, Any], data: pd.DataFrame | None) -> Reply:
        step = proxy.step
        try:
            requested = SecurityLevel.parse(args["level"])
        except LevelParseError:
            raise step.refuse(
                f"with_uplifted_security_level: unknown level {args['level']!r}"
            ) from None
        current = proxy.frame.security_level
        if requested < current:
            raise step.refuse(
                f"with_uplifted_security_level({requested}) would lower a {current} frame"
            )
        if requested > step.output_level:
            raise step.refuse(
                f"with_uplifted_security_level({requested}) goes past the plan's output level "
                f"{step.output_level}; declare an output floor of {requested} instead"
            )
        new = proxy.frame.with_uplifted_security_level(step.output_level)
        return self._advance(proxy, new, [proxy.frame], "with_uplifted_security_level")

    def _metadata(self, proxy: _Proxy, args: Mapping[str, Any], data: pd.DataFrame | None) -> Reply:
        frame = proxy.frame
        rows, _ = frame.shape
        columns = [str(column) for column in frame.data.columns]
        return Reply(
            {
                "level": frame.security_level.name,
                "rows": rows,
                "columns": columns,
                "version": proxy.version,
            }
        )

    def _verify_clearance(
        self, proxy: _Proxy, args: Mapping[str, Any], data: pd.DataFrame | None
    ) -> Reply:
        try:
            clearance = SecurityLevel.parse(args["level"])
        except LevelParseError:
            raise proxy.step.refuse(f"verify_clearance: unknown level {args['level']!r}") from None
        return Reply({"allowed": may_read(clearance, proxy.frame.security_level)})

    def _advance(
        self,
        proxy: _Proxy,
        new: SecureDataFrame,
        parents: Sequence[SecureDataFrame],
        method: str,
    ) -> Reply:
        step = proxy.step
        # Recorded before the level check: the daemon registered the frame either way.
        self.audit(
            FrameDerived(
                plugin=step.plugin,
                chunk_id=step.chunk_id,
                method=method,
                frame_id=new.frame_id,
                parents=tuple(parent.frame_id for parent in parents),
                level=new.security_level.name,
                audit_id=new.certificate.audit_id,
            )
        )
        if new.security_level != step.output_level:
            raise RuntimeLevelMismatchError(
                f"plugin {step.plugin!r} on chunk {step.chunk_id!r}: the authority issued "
                f"{new.security_level} but the clearance plan computed {step.output_level}"
            )
        if proxy.frame not in step.inputs:
            step.superseded.append(proxy.frame)
        proxy.frame = new
        proxy.version += 1
        return Reply({"version": proxy.version})


PROXY_METHODS: Final[Mapping[str, MethodRule]] = MappingProxyType(
    {
        "get_view": MethodRule({}, False, ProxyService._get_view),
        "replace_data": MethodRule(
            {"based_on_version": _is_version, "update": _is_bool},
            True,
            ProxyService._replace_data,
        ),
        "with_uplifted_security_level": MethodRule(
            {"level": _is_level_name}, False, ProxyService._uplift
        ),
        "get_metadata": MethodRule({}, False, ProxyService._metadata),
        "verify_clearance": MethodRule(
            {"level": _is_level_name}, False, ProxyService._verify_clearance
        ),
    }
)
"""The proxy policy: method -> (exact arguments, carries data in, handler)."""
