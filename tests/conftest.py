"""Fixtures every test directory may use live in tests/support/fixtures.py.

Hypothesis runs every property test under one profile, loaded here before any test module is
imported (so before any ``@settings`` takes the profile as its parent). A cold run (a fresh clone,
CI) spends its first examples building caches, such as ``st.text()``'s character tables, which
trips the ``too_slow`` health check and any deadline; so no deadline and no ``too_slow``. A test
with its own ``suppress_health_check`` list replaces this one, so such lists name ``too_slow``
again. Under CI (``CI`` set, as CI services do) there is no example database and Hypothesis keeps
its caches in a directory of the run's own: every CI run is the cold run a fresh clone sees, and
writes nothing into the checkout.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.support.fixtures"]

IN_CI = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}

if IN_CI:
    # Removed when the run ends; read by Hypothesis at its first use of storage, after this.
    _HYPOTHESIS_HOME = tempfile.TemporaryDirectory(prefix="elspeth-hypothesis-")
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", _HYPOTHESIS_HOME.name)

settings.register_profile("elspeth", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("elspeth-ci", settings.get_profile("elspeth"), database=None)
settings.load_profile("elspeth-ci" if IN_CI else "elspeth")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last_in_session`` go last, so what they wait for runs beside the rest."""
    items.sort(key=lambda item: item.get_closest_marker("last_in_session") is not None)
