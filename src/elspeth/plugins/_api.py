"""What a plugin author writes against: the plugin class, its proxies, views and context.

A plugin never holds a :class:`~elspeth.security.SecureDataFrame`. It runs in a sandboxed worker
and receives :class:`FrameProxy` objects: opaque handles whose every call goes back to the
orchestrator, which checks the handle, the version and the level, and has the seal authority
register whatever the plugin produces. See ``docs/plugins.md``.
"""

from __future__ import annotations

import abc
import enum
import functools
import hashlib
import inspect
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

import pydantic

from elspeth.errors import ConfigurationError
from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import pandas as pd


class PluginKind(enum.Enum):
    """What a plugin does in a pipeline; the kind fixes how many proxies it receives."""

    ROW_PLUGIN = "row_plugin"
    VALIDATOR = "validator"
    AGGREGATOR = "aggregator"
    BASELINE_COMPARISON = "baseline_comparison"
    EARLY_STOP = "early_stop"


PROXY_COUNTS: Final[Mapping[PluginKind, tuple[int, int | None]]] = MappingProxyType(
    {
        PluginKind.ROW_PLUGIN: (1, 1),
        PluginKind.VALIDATOR: (1, 1),
        PluginKind.EARLY_STOP: (1, 1),
        PluginKind.AGGREGATOR: (1, None),
        PluginKind.BASELINE_COMPARISON: (2, 2),
    }
)
"""Kind -> (fewest, most) proxies one call may pass; ``None`` means no upper bound."""

_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


class NoParameters(pydantic.BaseModel):
    """The parameter schema of a plugin that takes none: any key is an error."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class View:
    """A private copy of a frame's current data, and the version it was taken from."""

    data: pd.DataFrame
    version: int


@dataclass(frozen=True, slots=True)
class FrameMetadata:
    """What a plugin may know about a frame without reading it: no id, digest or seal."""

    level: SecurityLevel
    rows: int
    columns: tuple[str, ...]
    version: int


class FrameProxy(Protocol):
    """An opaque handle to one frame; every call is checked by the orchestrator."""

    def get_view(self) -> View:
        """The current data (an Arrow IPC copy) and its version."""
        ...

    def replace_data(self, data: pd.DataFrame, based_on_version: int) -> int:
        """Hand back new data computed from version ``based_on_version``; returns the new version.

        A stale version (the frame changed since that view) is refused. The new frame's level is
        the join of every frame this worker was given and the plugin's output floor.
        """
        ...

    def with_uplifted_security_level(self, level: SecurityLevel | str) -> int:
        """Raise the frame's level (never lower it); returns the new version."""
        ...

    def get_metadata(self) -> FrameMetadata:
        """Level name, shape, columns and version."""
        ...

    def verify_clearance(self, level: SecurityLevel | str) -> None:
        """Raise :class:`~elspeth.security.ClearanceError` if ``level`` may not read this frame."""
        ...


@dataclass(frozen=True, slots=True)
class PluginContext:
    """Where a call runs: the chunk being processed, for the plugin's own logging."""

    plugin_name: str
    chunk_id: str

    def log(self, message: str) -> None:
        """Write a line to the worker's stderr: captured into the run's private worker log."""
        print(f"[{self.plugin_name} chunk={self.chunk_id}] {message}", file=sys.stderr)


class Plugin(abc.ABC):
    """Base class of every plugin. Subclasses declare the class attributes and implement ``run``.

    ``clearance`` is the highest level the plugin may receive; ``output_floor`` (optional) marks
    everything it produces at least that high; ``Parameters`` is a pydantic model of its
    parameters, checked before any data moves.
    """

    name: ClassVar[str]
    kind: ClassVar[PluginKind]
    clearance: ClassVar[SecurityLevel]
    output_floor: ClassVar[SecurityLevel | None] = None
    Parameters: ClassVar[type[pydantic.BaseModel]] = NoParameters

    def __init__(self, parameters: pydantic.BaseModel) -> None:
        self.parameters = parameters

    @abc.abstractmethod
    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        """Process the frames behind ``proxies``; results go back through ``replace_data``."""


def check_declaration(plugin: type[Plugin], source: str) -> None:
    """Raise :class:`ConfigurationError` if a plugin class declares itself wrongly."""
    name = getattr(plugin, "name", None)
    problems: list[str] = []
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"name {name!r} must match {_NAME.pattern}")
    if not isinstance(getattr(plugin, "kind", None), PluginKind):
        problems.append(f"kind must be one of {[k.value for k in PluginKind]}")
    if not isinstance(getattr(plugin, "clearance", None), SecurityLevel):
        problems.append("clearance must be a SecurityLevel")
    floor = getattr(plugin, "output_floor", None)
    if floor is not None and not isinstance(floor, SecurityLevel):
        problems.append("output_floor must be a SecurityLevel or None")
    parameters = getattr(plugin, "Parameters", None)
    if not (isinstance(parameters, type) and issubclass(parameters, pydantic.BaseModel)):
        problems.append("Parameters must be a pydantic BaseModel subclass")
    if problems:
        raise ConfigurationError(
            f"plugin class {plugin.__qualname__} from {source} is declared wrongly: "
            + "; ".join(problems)
        )


def validate_parameters(plugin: type[Plugin], parameters: Mapping[str, Any] | None) -> Any:
    """The plugin's parameter model, or a :class:`ConfigurationError` naming every bad field."""
    try:
        return plugin.Parameters.model_validate(dict(parameters or {}))
    except pydantic.ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(parameters)'}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigurationError(f"plugin {plugin.name!r}: invalid parameters: {details}") from None


@functools.cache
def _distributions_by_package() -> Mapping[str, list[str]]:
    """Top-level package -> distributions; reading every distribution's metadata takes about
    0.15 s, so a worker does it once, not once per plugin it describes."""
    return metadata.packages_distributions()


def plugin_version(plugin: type[Plugin]) -> str:
    """Which code a plugin is: its distribution and version, or for a plugin file loaded from a
    plugin directory, the file's name and SHA-256 (such files have no version of their own)."""
    top = plugin.__module__.split(".", 1)[0]
    distributions = _distributions_by_package().get(top)
    if distributions:
        name = distributions[0]
        return f"{name} {metadata.version(name)}"
    source = inspect.getsourcefile(plugin)
    if source is None:
        return "unknown"
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return f"file {Path(source).name} sha256:{digest}"


def describe(plugin: type[Plugin], parameters: pydantic.BaseModel | None = None) -> dict[str, Any]:
    """A plugin's declaration as plain data (what the orchestrator plans with)."""
    low, high = PROXY_COUNTS[plugin.kind]
    return {
        "name": plugin.name,
        "version": plugin_version(plugin),
        "kind": plugin.kind.value,
        "clearance": plugin.clearance.name,
        "output_floor": plugin.output_floor.name if plugin.output_floor else None,
        "min_proxies": low,
        "max_proxies": high,
        "parameters": parameters.model_dump(mode="json") if parameters is not None else None,
        "parameter_schema": plugin.Parameters.model_json_schema(),
    }
