"""The orchestrator: owns the real frames, runs plugin workers, and serves their proxies.

Import-light on purpose: ``python -m elspeth.orchestrator.worker_process`` imports this package
before the worker sandboxes itself, so nothing here may import pandas, pyarrow or anything else
that starts threads.
"""
