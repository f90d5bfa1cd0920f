"""The reaper: runs as the workers' user, outside any worker's process group and sandbox.

``python -I -m elspeth.orchestrator.reaper`` (:mod:`._main`) ends a worker's process group and
removes its scratch directory, or, as ``watch``, watches that directory's size
(:mod:`._scratch_watch`, which also holds the orchestrator's handle on a running watcher).
Standard library only.
"""
