"""The plugin API: everything a plugin author needs, and nothing of the runtime behind it.

Write a plugin by subclassing :class:`Plugin` (see ``docs/plugins.md``, which documents every name
exported here); make it available through the :data:`ENTRY_POINT_GROUP` entry-point group or a
plugin directory. Plugins receive :class:`FrameProxy` handles, never frames; a refused proxy call
raises :class:`ProxyRefusedError`, and ``verify_clearance`` raises :class:`ClearanceError`.

The machinery that finds, checks and describes plugins (``_registry``, ``_declaration``) is
private to Elspeth's workers and orchestrator.
"""

from __future__ import annotations

from elspeth.orchestrator._errors import ProxyRefusedError
from elspeth.plugins._api import (
    ENTRY_POINT_GROUP,
    FrameMetadata,
    FrameProxy,
    NoParameters,
    Plugin,
    PluginContext,
    PluginKind,
    View,
)
from elspeth.security import ClearanceError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ClearanceError",
    "FrameMetadata",
    "FrameProxy",
    "NoParameters",
    "Plugin",
    "PluginContext",
    "PluginKind",
    "ProxyRefusedError",
    "View",
]
