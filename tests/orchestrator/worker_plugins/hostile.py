"""Hostile plugins: each tries to break a rule; the tests check it is contained and reported."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import time
from collections.abc import Sequence

import pydantic

from elspeth.plugins import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.security import SecurityLevel

_KEPT_HANDLES: list[str] = []


class HandleParameters(pydantic.BaseModel):
    handle: str = "forged-handle-0123456789"


class _RowPlugin(Plugin):
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        raise NotImplementedError


class ForgedHandle(_RowPlugin):
    name = "forged_handle"
    Parameters = HandleParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        proxies[0]._handle = self.parameters.handle  # type: ignore[attr-defined]
        proxies[0].get_view()


class KeepHandle(_RowPlugin):
    """Remembers its handle in the worker for a later call to misuse."""

    name = "keep_handle"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        _KEPT_HANDLES.append(proxies[0]._handle)  # type: ignore[attr-defined]


class StaleHandle(_RowPlugin):
    name = "stale_handle"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        proxies[0]._handle = _KEPT_HANDLES[-1]  # type: ignore[attr-defined]
        proxies[0].get_view()


class ReplayVersion(_RowPlugin):
    """Replaces the data, then replaces it again from the old view."""

    name = "replay_version"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        view = proxies[0].get_view()
        proxies[0].replace_data(view.data, view.version)
        proxies[0].replace_data(view.data.head(0), view.version)


class LowerLevel(_RowPlugin):
    name = "lower_level"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        proxies[0].with_uplifted_security_level(SecurityLevel.UNOFFICIAL)


class UpliftPastPlan(_RowPlugin):
    name = "uplift_past_plan"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        proxies[0].with_uplifted_security_level(SecurityLevel.OFFICIAL_SENSITIVE)


class GarbageOnChannel(_RowPlugin):
    """Writes a well-framed body that is not msgpack straight onto the channel."""

    name = "garbage_on_channel"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        body = b"\xc1\xc1\xc1 not msgpack"
        os.write(0, struct.pack(">I", len(body)) + body)
        time.sleep(3600)


class HugeMessage(_RowPlugin):
    """Announces a 4 GiB message on the channel."""

    name = "huge_message"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        os.write(0, struct.pack(">I", 2**32 - 1) + b"\x00" * 64)
        time.sleep(3600)


class HugePayload(_RowPlugin):
    """Announces a 1 TiB payload after a well-formed proxy call."""

    name = "huge_payload"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import msgpack

        body = msgpack.packb(
            {
                "op": "proxy",
                "seq": 1,
                "method": "replace_data",
                "handle": "h",
                "args": {},
                "size": 2**40,
            },
            use_bin_type=True,
        )
        os.write(0, struct.pack(">I", len(body)) + body + b"\x00" * 64)
        time.sleep(3600)


class MisalignedUpdate(_RowPlugin):
    """Sends a column update whose rows do not line up with the frame it updates."""

    name = "misaligned_update"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import pandas as pd

        from elspeth.orchestrator._arrow import frame_to_ipc

        view = proxies[0].get_view()
        shifted = pd.DataFrame({"extra": range(len(view.data))}, index=view.data.index + 1)
        proxies[0]._call(  # type: ignore[attr-defined]
            "replace_data",
            {"based_on_version": view.version, "update": True},
            payload=frame_to_ipc(shifted),
        )


class InfiniteLoop(_RowPlugin):
    """Spins forever and ignores SIGTERM."""

    name = "infinite_loop"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            pass


class ForkParameters(pydantic.BaseModel):
    children: int = 40


class ForkBomb(_RowPlugin):
    """Forks until the process limit stops it (bounded, since root ignores RLIMIT_NPROC),
    every child ignoring SIGTERM and trying to leave the group; then hangs."""

    name = "fork_bomb"
    Parameters = ForkParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _ in range(self.parameters.children):  # type: ignore[attr-defined]
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                with contextlib.suppress(OSError):
                    os.setsid()
                try:
                    if os.fork() > 0:
                        os._exit(0)
                except OSError:
                    pass
                while True:
                    time.sleep(1)
        while True:
            time.sleep(1)


class AllocateParameters(pydantic.BaseModel):
    gigabytes: int = 64


class HugeAllocation(_RowPlugin):
    name = "huge_allocation"
    Parameters = AllocateParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        block = bytearray(self.parameters.gigabytes * 1024**3)  # type: ignore[attr-defined]
        block[-1] = 1


class PayloadParameters(pydantic.BaseModel):
    size: int = 64 * 1024**2 + 1


class OversizedPayload(_RowPlugin):
    """Announces a payload just above the orchestrator's payload cap after a well-formed proxy
    call, then sends all of it (zeros: not an Arrow stream) as fast as the socket takes it."""

    name = "oversized_payload"
    Parameters = PayloadParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import msgpack

        size = self.parameters.size  # type: ignore[attr-defined]
        body = msgpack.packb(
            {
                "op": "proxy",
                "seq": 1,
                "method": "replace_data",
                "handle": proxies[0]._handle,  # type: ignore[attr-defined]
                "args": {"based_on_version": 1, "update": False},
                "size": size,
            },
            use_bin_type=True,
        )
        os.write(0, struct.pack(">I", len(body)) + body)
        block = memoryview(bytes(1024**2))
        with contextlib.suppress(OSError):
            while size > 0:
                size -= os.write(0, block[: min(size, block.nbytes)])
        time.sleep(3600)


class FileParameters(pydantic.BaseModel):
    megabytes: int = 2


class BigFile(_RowPlugin):
    """Writes a file of ``megabytes`` into its scratch directory."""

    name = "big_file"
    Parameters = FileParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        block = bytes(1024**2)
        with open(os.path.join(os.environ["TMPDIR"], "big.bin"), "wb") as out:
            for _ in range(self.parameters.megabytes):  # type: ignore[attr-defined]
                out.write(block)
                out.flush()


def _announce(proxy: FrameProxy, size: int, *, update: bool) -> None:
    """Send the proxy message of a ``replace_data`` call announcing ``size`` payload bytes."""
    import msgpack

    body = msgpack.packb(
        {
            "op": "proxy",
            "seq": 1,
            "method": "replace_data",
            "handle": proxy._handle,  # type: ignore[attr-defined]
            "args": {"based_on_version": 1, "update": update},
            "size": size,
        },
        use_bin_type=True,
    )
    os.write(0, struct.pack(">I", len(body)) + body)
    # Written by hand, so the worker's own record of the session is advanced by hand: its
    # answer is then the proxy_reply the conversation expects.
    proxy._channel.conversation.sending("proxy")  # type: ignore[attr-defined]


def _write_all(data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(0, view) :]


class StreamParameters(pydantic.BaseModel):
    stream: str = "list_column"
    update: bool = False


class LyingStream(_RowPlugin):
    """Announces a stream whose headers are wrong for the reply, then a large body it writes for
    as long as the orchestrator reads (zeros after a list column's schema; a real batch of 4 Mi
    rows as a column update of a 3-row frame; 50 M rows of a null column in no bytes at all)."""

    name = "lying_stream"
    Parameters = StreamParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import pyarrow as pa

        parameters: StreamParameters = self.parameters  # type: ignore[assignment]
        body = b""
        if parameters.stream == "list_column":
            table = pa.table({"items": pa.array([], pa.list_(pa.int64()))})
            body = bytes(60 * 1024**2)
        elif parameters.stream == "rows":
            table = pa.table({"extra": pa.array(range(4 * 1024**2), pa.int64())})
        else:
            table = pa.table({"nothing": pa.nulls(50_000_000)})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        stream = sink.getvalue()
        _announce(proxies[0], stream.size + len(body), update=parameters.update)
        with contextlib.suppress(OSError):
            _write_all(stream)
            _write_all(body)
        time.sleep(3600)


class HeldParameters(pydantic.BaseModel):
    rows: int = 100_000
    hold: bool = False


class HeldPayload(_RowPlugin):
    """Replaces its frame with ``rows`` integers, sending the stream by hand; with ``hold`` it
    stops halfway until a file named ``release`` appears in its scratch directory (or 60 s
    pass), so the orchestrator holds the payload in flight meanwhile."""

    name = "held_payload"
    Parameters = HeldParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import pandas as pd

        from elspeth.orchestrator._arrow import frame_to_ipc

        parameters: HeldParameters = self.parameters  # type: ignore[assignment]
        payload = frame_to_ipc(pd.DataFrame({"n": range(parameters.rows)}))
        _announce(proxies[0], payload.nbytes, update=False)
        half = payload.nbytes // 2
        _write_all(payload[:half])
        release = os.path.join(os.environ["TMPDIR"], "release")
        deadline = time.monotonic() + 60
        while parameters.hold and not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
        _write_all(payload[half:])
        reply = proxies[0]._channel.receive()  # type: ignore[attr-defined]
        if not reply["ok"]:
            raise RuntimeError(reply["error"])


class ManyFilesParameters(pydantic.BaseModel):
    files: int = 64
    kilobytes: int = 256


class ManyFiles(_RowPlugin):
    """Writes ``files`` files of ``kilobytes`` each into its scratch directory, every one below
    the file-size limit, then waits."""

    name = "many_files"
    Parameters = ManyFilesParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        parameters: ManyFilesParameters = self.parameters  # type: ignore[assignment]
        block = bytes(parameters.kilobytes * 1024)
        for number in range(parameters.files):
            with open(os.path.join(os.environ["TMPDIR"], f"part-{number}.bin"), "wb") as out:
                out.write(block)
        time.sleep(3600)


class SignalWatchers(_RowPlugin):
    """Sends SIGKILL to every scratch watcher it can find in /proc and reports each outcome."""

    name = "signal_watchers"

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import errno

        import pandas as pd

        outcomes: list[str] = []
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if b"elspeth.orchestrator.reaper" in argv and b"watch" in argv:
                try:
                    os.kill(int(name), signal.SIGKILL)
                except OSError as error:
                    outcomes.append(errno.errorcode[error.errno or 0])
                else:
                    outcomes.append("killed")
        view = proxies[0].get_view()
        proxies[0].replace_data(pd.DataFrame({"outcome": outcomes}), view.version)


class RawMessageParameters(pydantic.BaseModel):
    op: str
    fields: dict[str, object] = {}


class RawMessage(_RowPlugin):
    """Writes a well-formed message of any op straight onto the channel, whatever the phase."""

    name = "raw_message"
    Parameters = RawMessageParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import msgpack

        parameters: RawMessageParameters = self.parameters  # type: ignore[assignment]
        body = msgpack.packb({"op": parameters.op, **parameters.fields}, use_bin_type=True)
        os.write(0, struct.pack(">I", len(body)) + body)
        time.sleep(5)  # the orchestrator judges the message before the result could follow
