"""The sandbox's one error type."""

from __future__ import annotations

from elspeth.errors import ElspethError


class SandboxError(ElspethError):
    """A worker could not harden itself as required; the worker must not run plugin code."""
