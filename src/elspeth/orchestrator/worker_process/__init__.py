"""The plugin worker: the untrusted side of the worker boundary.

Everything in this package runs inside a worker process (user ``appplugin`` in sudo mode), started
as ``python -I -m elspeth.orchestrator.worker_process``: the start-up and hardening sequence
(:mod:`._main`, :mod:`._sandbox`), the loop that serves RPC requests and runs plugin code
(:mod:`._loop`) and the framed channel to the orchestrator (:mod:`._channel`). The orchestrator
imports only :func:`._sandbox.worker_environment`, to build the environment a worker starts with.

Importing this package imports nothing: the worker checks its environment and thread count
before any module that could start a thread is loaded.
"""
