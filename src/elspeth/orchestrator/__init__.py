"""The orchestrator: owns the real frames, runs plugin workers, and serves their proxies.

Import-light on purpose: ``python -m elspeth.orchestrator.worker_process`` imports this package
before the worker sandboxes itself, so nothing here may import pandas, pyarrow or anything else
that starts threads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elspeth.orchestrator._errors import (
        PluginFailedError,
        PluginTimeoutError,
        ProxyRefusedError,
        RuntimeLevelMismatchError,
        WorkerCrashedError,
        WorkerError,
        WorkerProtocolError,
        WorkerStartError,
    )
    from elspeth.orchestrator._runtime._config import (
        ErrorPolicy,
        RuntimeConfig,
        SpawnMode,
        WorkerLimits,
    )
    from elspeth.orchestrator._runtime._plugin_runtime import (
        PluginCall,
        PluginInfo,
        PluginRuntime,
        StepResult,
    )

_LAZY = {
    "ErrorPolicy": "elspeth.orchestrator._runtime._config",
    "RuntimeConfig": "elspeth.orchestrator._runtime._config",
    "SpawnMode": "elspeth.orchestrator._runtime._config",
    "WorkerLimits": "elspeth.orchestrator._runtime._config",
    "PluginFailedError": "elspeth.orchestrator._errors",
    "PluginTimeoutError": "elspeth.orchestrator._errors",
    "ProxyRefusedError": "elspeth.orchestrator._errors",
    "RuntimeLevelMismatchError": "elspeth.orchestrator._errors",
    "WorkerCrashedError": "elspeth.orchestrator._errors",
    "WorkerError": "elspeth.orchestrator._errors",
    "WorkerProtocolError": "elspeth.orchestrator._errors",
    "WorkerStartError": "elspeth.orchestrator._errors",
    "PluginCall": "elspeth.orchestrator._runtime._plugin_runtime",
    "PluginInfo": "elspeth.orchestrator._runtime._plugin_runtime",
    "PluginRuntime": "elspeth.orchestrator._runtime._plugin_runtime",
    "StepResult": "elspeth.orchestrator._runtime._plugin_runtime",
}

__all__ = [
    "ErrorPolicy",
    "PluginCall",
    "PluginFailedError",
    "PluginInfo",
    "PluginRuntime",
    "PluginTimeoutError",
    "ProxyRefusedError",
    "RuntimeConfig",
    "RuntimeLevelMismatchError",
    "SpawnMode",
    "StepResult",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerLimits",
    "WorkerProtocolError",
    "WorkerStartError",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'elspeth.orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
