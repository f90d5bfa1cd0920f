"""The worker's request loop and the proxies plugins call; loaded only after hardening."""

from __future__ import annotations

import contextlib
import errno
import itertools
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from elspeth.errors import ConfigurationError
from elspeth.orchestrator import _wire
from elspeth.orchestrator._arrow import allocate, frame_to_ipc, ipc_to_table
from elspeth.orchestrator._column_update import ViewBase, columns_to_send
from elspeth.orchestrator._errors import ProxyRefusedError
from elspeth.orchestrator.worker_process._channel import WorkerChannel
from elspeth.plugins import FrameMetadata, PluginContext, View
from elspeth.plugins._declaration import PROXY_COUNTS, describe, validate_parameters
from elspeth.plugins._registry import PluginRegistry, UnknownPluginError
from elspeth.security import ClearanceError, SecurityLevel

if TYPE_CHECKING:
    import pandas as pd


class _ChannelBroken(BaseException):
    """The channel failed during a proxy call; plugin code must not be able to swallow it."""


class RemoteProxy:
    """The plugin's :class:`~elspeth.plugins.FrameProxy`: each call is one round trip."""

    _sequence = itertools.count(1)

    def __init__(self, channel: WorkerChannel, handle: str) -> None:
        self._channel = channel
        self._handle = handle
        self._base: ViewBase | None = None

    def get_view(self) -> View:
        value, payload = self._call("get_view", {}, expect_payload=True)
        version = _int(value, "version")
        try:
            table = ipc_to_table(payload)
        except ValueError as error:
            raise _ChannelBroken(f"get_view: {error}") from None
        frame: pd.DataFrame = table.to_pandas()
        self._base = ViewBase.of(version, table, frame)
        return View(frame, version)

    def replace_data(self, data: pd.DataFrame, based_on_version: int) -> int:
        base = self._base
        send = (
            columns_to_send(base, data)
            if base is not None and base.version == based_on_version
            else None
        )
        args = {"based_on_version": based_on_version, "update": send is not None}
        payload = frame_to_ipc(data if send is None else data[send])
        value, _ = self._call("replace_data", args, payload=payload)
        return _int(value, "version")

    def with_uplifted_security_level(self, level: SecurityLevel | str) -> int:
        value, _ = self._call(
            "with_uplifted_security_level", {"level": SecurityLevel.parse(level).name}
        )
        return _int(value, "version")

    def get_metadata(self) -> FrameMetadata:
        value, _ = self._call("get_metadata", {})
        return FrameMetadata(
            level=SecurityLevel.parse(value["level"]),
            rows=_int(value, "rows"),
            columns=tuple(str(c) for c in value["columns"]),
            version=_int(value, "version"),
        )

    def verify_clearance(self, level: SecurityLevel | str) -> None:
        clearance = SecurityLevel.parse(level)
        value, _ = self._call("verify_clearance", {"level": clearance.name})
        if value.get("allowed") is not True:
            raise ClearanceError(
                f"this frame may not be read by a component cleared to {clearance}"
            )

    def _call(
        self,
        method: str,
        args: Mapping[str, Any],
        *,
        payload: _wire.Buffer = b"",
        expect_payload: bool = False,
    ) -> tuple[dict[str, Any], memoryview]:
        seq = next(self._sequence)
        channel = self._channel
        fields = {"seq": seq, "method": method, "handle": self._handle, "args": dict(args)}
        try:
            channel.send_with_payload("proxy", payload, **fields)
            reply = channel.receive()
            # The conversation admits only a proxy_reply here; its seq must be this call's.
            if reply["seq"] != seq:
                raise _wire.ProtocolError(f"expected proxy_reply {seq}, got {reply['seq']}")
        except (_wire.ProtocolError, OSError) as error:
            raise _ChannelBroken(str(error)) from None
        if not reply["ok"]:
            raise ProxyRefusedError(reply["error"] or f"{method} refused")
        value = reply["value"]
        if not isinstance(value, dict) or (expect_payload and not reply.payload):
            raise _ChannelBroken(f"malformed {method} reply")
        return value, reply.payload


def _int(value: Mapping[str, Any], key: str) -> int:
    number = value.get(key)
    if not isinstance(number, int) or isinstance(number, bool):
        raise _ChannelBroken(f"reply field {key!r} is not an integer")
    return number


class _Worker:
    def __init__(self, channel: WorkerChannel, plugin_dirs: tuple[str, ...]) -> None:
        self.channel = channel
        self.registry: PluginRegistry | None = None
        self.registry_error: str | None = None
        try:
            self.registry = PluginRegistry(plugin_dirs)
        except ConfigurationError as error:
            self.registry_error = str(error)

    def warm(self, message: _wire.Message) -> None:
        """Make now the imports every call would otherwise make on first use (pandas, for the
        views), so that a call's deadline times the plugin's own work."""
        import pandas  # noqa: F401

        self.channel.send("warmed")

    def describe(self, message: _wire.Message) -> None:
        try:
            registry = self._registry()
            plugin = registry.get(message["plugin"])
            params = message["params"]
            validated = validate_parameters(plugin, params) if params is not None else None
            info = describe(plugin, validated)
        except ConfigurationError as error:
            self.channel.send("described", id=message["id"], ok=False, info=None, error=str(error))
            return
        self.channel.send("described", id=message["id"], ok=True, info=info, error=None)

    def run(self, message: _wire.Message) -> None:
        name, chunk = message["plugin"], message["chunk"]
        error_kind = self._run_plugin(name, chunk, message["params"], message["handles"])
        self.channel.send("result", id=message["id"], ok=error_kind is None, error=error_kind)

    def _run_plugin(
        self, name: str, chunk: str, params: dict[str, Any], handles: list[str]
    ) -> str | None:
        try:
            plugin = self._registry().build(name, params)
        except ConfigurationError as error:
            print(f"elspeth worker: plugin {name!r} chunk {chunk!r}: {error}", file=sys.stderr)
            return "unknown_plugin" if isinstance(error, UnknownPluginError) else "bad_parameters"
        low, high = PROXY_COUNTS[plugin.kind]
        if len(handles) < low or (high is not None and len(handles) > high):
            return "wrong_proxy_count"
        proxies = [RemoteProxy(self.channel, handle) for handle in handles]
        try:
            plugin.run(proxies, PluginContext(plugin_name=name, chunk_id=chunk))
        except _ChannelBroken:
            raise
        except BaseException:  # noqa: BLE001 - anything a plugin raises is its failure
            print(f"elspeth worker: plugin {name!r} failed on chunk {chunk!r}:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return _failure_kind(sys.exc_info()[1])
        return None

    def _registry(self) -> PluginRegistry:
        if self.registry is None:
            raise ConfigurationError(self.registry_error or "plugin registry unavailable")
        return self.registry


def _failure_kind(error: BaseException | None) -> str:
    """``plugin_error``, or the limit that caused it when the error or one it came from (its
    cause or context) is what hitting that limit raises."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MemoryError):
            return "address_space_limit"
        if isinstance(error, OSError) and error.errno == errno.EFBIG:
            return "file_size_limit"
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return "plugin_error"


def serve(channel: WorkerChannel, *, plugin_dirs: tuple[str, ...]) -> int:
    """Answer requests until ``shutdown`` or end of input; a broken channel ends the worker."""
    channel.allocate = allocate
    worker = _Worker(channel, plugin_dirs)
    handlers: dict[str, Callable[[_wire.Message], None]] = {
        "warm": worker.warm,
        "describe": worker.describe,
        "run": worker.run,
    }
    while True:
        try:
            message = channel.receive()
        except _wire.ChannelClosedError:
            return 0
        except _wire.OutOfPhaseError as error:
            return _refuse(channel, "unexpected", str(error))
        except _wire.ProtocolError as error:
            return _refuse(channel, "malformed", str(error))
        if message.op == "shutdown":
            return 0
        try:
            # Between calls the conversation admits exactly warm, describe, run and shutdown.
            handlers[message.op](message)
        except _ChannelBroken as error:
            print(f"elspeth worker: channel broken: {error}", file=sys.stderr)
            return 2


def _refuse(channel: WorkerChannel, kind: str, text: str) -> int:
    print(f"elspeth worker: {kind}: {text}", file=sys.stderr)
    with contextlib.suppress(OSError):
        channel.send("error", kind=kind, message=text[:1000])
    return 2
