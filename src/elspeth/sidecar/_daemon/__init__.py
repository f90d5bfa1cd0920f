"""The daemon: runs as the ``sidecar`` user and alone holds the seal and checkpoint keys.

:mod:`._main` starts it (``elspeth-sidecar``), :mod:`._server` accepts connections and applies
:mod:`._policy` (the table of operations by phase), :mod:`._session` authenticates a connection,
:mod:`._engine` seals, checks and derives, :mod:`._audit` writes its audit log and
:mod:`._config` reads ``sidecar.toml``. The orchestrator's code never imports this package.
"""
