"""The daemon's client: runs in the orchestrator process and never holds the seal key.

:mod:`._connection` is :class:`~elspeth.sidecar.SidecarClient`, the seal authority spoken over
the Unix socket; :mod:`._standalone` launches a private daemon as a child process. The wire
format, argument schemas and key-file rules both sides share are in :mod:`elspeth.sidecar`'s
``_protocol``, ``_schema`` and ``_keys``.
"""
