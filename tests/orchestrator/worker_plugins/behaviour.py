"""Plugins with ordinary behaviour for the runtime tests, loaded through a plugin directory."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import pandas as pd
import pydantic

from elspeth.plugins import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.security import SecurityLevel


class Columns(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    column: str = "value"


class FailingPlugin(Plugin):
    """Raises with a message that stands for row content."""

    name = "failing"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        view = proxies[0].get_view()
        raise ValueError(f"ROW-CONTENT-{view.data.iloc[0, 0]}")


class CrashingPlugin(Plugin):
    name = "crashing"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        os._exit(7)


class SleepParameters(pydantic.BaseModel):
    seconds: float = 3600.0


class SleepingPlugin(Plugin):
    name = "sleeping"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    Parameters = SleepParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        import time

        time.sleep(self.parameters.seconds)  # type: ignore[attr-defined]


class PrintingPlugin(Plugin):
    """Writes to stdout every way it can, and to stderr, then doubles a column."""

    name = "printing"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    Parameters = Columns

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        print("PRINTED-TO-STDOUT")
        sys.stdout.flush()
        os.write(1, b"\x00\x00\x00\x05RAW-FD1-BYTES")
        print("STDERR-SENTINEL", file=sys.stderr)
        context.log("CONTEXT-LOG-SENTINEL")
        view = proxies[0].get_view()
        column = self.parameters.column  # type: ignore[attr-defined]
        doubled = view.data.assign(**{column: view.data[column] * 2})
        proxies[0].replace_data(doubled, view.version)


class MeanAggregator(Plugin):
    """One summary row from every chunk it receives."""

    name = "mean_aggregator"
    kind = PluginKind.AGGREGATOR
    clearance = SecurityLevel.SECRET
    Parameters = Columns

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        column = self.parameters.column  # type: ignore[attr-defined]
        views = [proxy.get_view() for proxy in proxies]
        values = pd.concat([view.data[column] for view in views])
        summary = pd.DataFrame({"chunks": [len(views)], "mean": [float(values.mean())]})
        proxies[0].replace_data(summary, views[0].version)


class FlooredPlugin(Plugin):
    """Declares an output floor: whatever it produces is at least OFFICIAL_SENSITIVE."""

    name = "floored"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    output_floor = SecurityLevel.OFFICIAL_SENSITIVE

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        metadata = proxies[0].get_metadata()
        proxies[0].verify_clearance(SecurityLevel.SECRET)
        view = proxies[0].get_view()
        info = pd.DataFrame(
            {
                "level": [metadata.level.name],
                "rows": [metadata.rows],
                "cols": [",".join(metadata.columns)],
            }
        )
        proxies[0].replace_data(info, view.version)


class UpliftingPlugin(Plugin):
    name = "uplifting"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    output_floor = SecurityLevel.OFFICIAL_SENSITIVE

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        proxies[0].with_uplifted_security_level("OFFICIAL_SENSITIVE")


class ProbeEnvironment(Plugin):
    """Reports what the worker can see: modules, environment, descriptors."""

    name = "probe_environment"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        view = proxies[0].get_view()
        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        try:
            with open("/proc/self/environ", "rb") as handle:
                block = handle.read()
        except PermissionError:
            # Not dumpable and not root: the kernel hides the block even from ourselves. The
            # root tier reads it from outside instead (tests/integration).
            block = b"UNREADABLE"
        original = sorted(entry.split(b"=", 1)[0].decode() for entry in block.split(b"\0") if entry)
        report = pd.DataFrame(
            {
                "kind": ["module"] * len(sys.modules)
                + ["env"] * len(os.environ)
                + ["original_env"] * len(original)
                + ["fd"] * len(fds),
                "value": [*sys.modules, *os.environ, *original, *map(str, fds)],
            }
        )
        proxies[0].replace_data(report, view.version)
