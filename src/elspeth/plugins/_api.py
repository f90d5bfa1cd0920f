"""What a plugin author writes against: the plugin class, its proxies, views and context.

A plugin never holds a :class:`~elspeth.security.SecureDataFrame`. It runs in a sandboxed worker
and receives :class:`FrameProxy` objects: opaque handles whose every call goes back to the
orchestrator, which checks the handle, the version and the level, and has the seal authority
register whatever the plugin produces. See ``docs/plugins.md``.
"""

from __future__ import annotations

import abc
import enum
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

import pydantic

from elspeth.security import SecurityLevel

if TYPE_CHECKING:
    import pandas as pd

ENTRY_POINT_GROUP: Final = "elspeth.plugins"
"""The entry-point group installed plugins register under (``[project.entry-points."..."]``)."""


class PluginKind(enum.Enum):
    """What a plugin does in a pipeline; the kind fixes how many proxies it receives."""

    ROW_PLUGIN = "row_plugin"
    VALIDATOR = "validator"
    AGGREGATOR = "aggregator"
    BASELINE_COMPARISON = "baseline_comparison"
    EARLY_STOP = "early_stop"


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
    parameters, checked before any data moves; ``min_memory_limit_bytes`` (optional) is the
    smallest address-space limit it can work in: the plan refuses to run it in less, naming the
    setting to raise, rather than let it fail mid-run (a plugin never raises its own limit).
    """

    name: ClassVar[str]
    kind: ClassVar[PluginKind]
    clearance: ClassVar[SecurityLevel]
    output_floor: ClassVar[SecurityLevel | None] = None
    Parameters: ClassVar[type[pydantic.BaseModel]] = NoParameters
    min_memory_limit_bytes: ClassVar[int] = 0

    def __init__(self, parameters: pydantic.BaseModel) -> None:
        self.parameters = parameters

    @abc.abstractmethod
    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        """Process the frames behind ``proxies``; results go back through ``replace_data``."""
