"""Report tests use the same real standalone seal authority as the datasource tests."""

from __future__ import annotations

from tests.datasources.conftest import authority, daemon

__all__ = ["authority", "daemon"]
