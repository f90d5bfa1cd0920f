"""The container tier: set up podman and a local base image, build both targets once a session.

Root only (CI is root); anywhere else every test here skips with the reason. The first run on a
machine makes the debootstrap base image (cached under /var/cache/elspeth-container/); later
runs reuse it and podman's layer cache, so a session takes a few minutes.
"""

from __future__ import annotations

import pytest

from tests.container import _podman


@pytest.fixture(scope="session")
def images() -> str:
    """Both images built from this tree; yields the base image they were built on."""
    reason = _podman.unavailable()
    if reason is not None:
        pytest.skip(f"container tier: {reason}")
    base = _podman.set_up_base_image()
    _podman.build("runtime", _podman.RUNTIME_IMAGE, base)
    _podman.build("dev", _podman.DEV_IMAGE, base)
    return base
