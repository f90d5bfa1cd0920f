"""The plugin API and registry: what runs in sandboxed workers, and how it is found by name.

Write a plugin by subclassing :class:`Plugin` (see ``docs/plugins.md``); make it available through
the ``elspeth.plugins`` entry-point group or a plugin directory. Plugins receive
:class:`FrameProxy` handles, never frames.
"""

from __future__ import annotations

from elspeth.plugins._api import (
    PROXY_COUNTS,
    FrameMetadata,
    FrameProxy,
    NoParameters,
    Plugin,
    PluginContext,
    PluginKind,
    View,
    check_declaration,
    describe,
    validate_parameters,
)
from elspeth.plugins._registry import (
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    PluginRegistry,
    UnknownPluginError,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PROXY_COUNTS",
    "FrameMetadata",
    "FrameProxy",
    "NoParameters",
    "Plugin",
    "PluginContext",
    "PluginKind",
    "PluginRegistry",
    "UnknownPluginError",
    "View",
    "check_declaration",
    "describe",
    "validate_parameters",
]
