"""The trusted side of the worker boundary: runs in the orchestrator process (``appuser``).

It owns the real frames and hands workers only handles: :mod:`._plugin_runtime` runs a plugin
call, :mod:`._pool` and :mod:`._process` start and talk to workers, :mod:`._proxies` holds the
table of what a handle may do, :mod:`._ipc_stream` and :mod:`._in_flight` judge what a worker
sends before it is read, :mod:`._stderr` keeps a worker's stderr at its level, and
:mod:`._config` says how workers are spawned. Modules spoken by both sides (the RPC wire format,
Arrow framing, column updates) sit one level up in :mod:`elspeth.orchestrator`.
"""
