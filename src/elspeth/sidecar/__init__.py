"""The sidecar security daemon, its client and standalone mode.

The daemon (``elspeth-sidecar --config FILE`` or ``python -m elspeth.sidecar``) holds the seal
key and construction token in memory and is the only thing that can bless a SecureDataFrame;
:class:`SidecarClient` implements :class:`~elspeth.security.SealAuthority` against it over a
Unix socket; :func:`start_standalone_daemon` runs a private daemon for one user. The wire
protocol is specified in ``docs/sidecar-protocol.md``.

Importing this package is cheap: everything below loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from elspeth.sidecar._errors import (
    CheckpointMismatchError,
    DaemonProtocolError,
    DaemonRestartedError,
    DaemonUnavailableError,
    KeyFileError,
    RequestRefusedError,
    SealRejectedError,
    SidecarConfigError,
)

if TYPE_CHECKING:
    from elspeth.sidecar._client._connection import SidecarClient
    from elspeth.sidecar._client._standalone import (
        StandaloneDaemon,
        default_state_dir,
        start_standalone_daemon,
    )
    from elspeth.sidecar._daemon._config import SidecarConfig, load_config

_LAZY = {
    "SidecarClient": "elspeth.sidecar._client._connection",
    "SidecarConfig": "elspeth.sidecar._daemon._config",
    "load_config": "elspeth.sidecar._daemon._config",
    "StandaloneDaemon": "elspeth.sidecar._client._standalone",
    "start_standalone_daemon": "elspeth.sidecar._client._standalone",
    "default_state_dir": "elspeth.sidecar._client._standalone",
}

__all__ = [
    "CheckpointMismatchError",
    "DaemonProtocolError",
    "DaemonRestartedError",
    "DaemonUnavailableError",
    "KeyFileError",
    "RequestRefusedError",
    "SealRejectedError",
    "SidecarClient",
    "SidecarConfig",
    "SidecarConfigError",
    "StandaloneDaemon",
    "default_state_dir",
    "load_config",
    "main",
    "start_standalone_daemon",
]


def main(argv: list[str] | None = None) -> int:
    """Console script ``elspeth-sidecar``: run the daemon; returns the exit status."""
    from elspeth.sidecar._daemon._main import main as daemon_main

    return daemon_main(argv)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'elspeth.sidecar' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
