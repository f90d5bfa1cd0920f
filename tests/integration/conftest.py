"""Fixtures of the root tier: real users, sudo, a world-readable virtualenv and the real daemon.

As root, the session provisions everything (see ``_tier.py``) and starts the daemon as
``sidecar``. As ``appuser`` inside the dev image, ``test_worker_isolation.py`` uses the image's
users, venv and sudoers rule instead. Anywhere else the tier skips with the reason; with
``ELSPETH_REQUIRE_ISOLATION_TESTS=1`` a skip in ``test_worker_isolation.py`` is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import _tier
from tests.integration._daemon import DaemonHandle, daemon_as_sidecar
from tests.integration._provision import missing_tools

REQUIRE_ISOLATION = "ELSPETH_REQUIRE_ISOLATION_TESTS"
ISOLATION_MODULE = "test_worker_isolation.py"
#: The production layout, used in the image when its daemon is running.
IMAGE_DAEMON_SOCKET = Path("/run/sidecar/auth.sock")
IMAGE_SESSION_KEY = Path("/run/sidecar/.session")


def isolation_required() -> bool:
    return os.environ.get(REQUIRE_ISOLATION) == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ELSPETH_REQUIRE_ISOLATION_TESTS=1, an isolation test that skipped has failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and isolation_required() and item.path.name == ISOLATION_MODULE:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reason = str(reason).removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_ISOLATION}=1, but this isolation test skipped: {reason}"


@pytest.fixture(scope="session")
def tier() -> Iterator[_tier.Tier]:
    mode, reason = _tier.current_mode()
    if mode is None:
        pytest.skip(f"root tier: {reason}; run as root (or as appuser in the dev image)")
    if mode == "image":
        with _tier.image_tier() as image:
            yield image
        return
    missing = missing_tools()
    if missing:
        pytest.skip(f"root tier: this machine lacks {', '.join(missing)}")
    with _tier.root_tier() as root:
        yield root


@pytest.fixture(scope="session")
def root_tier(tier: _tier.Tier) -> _tier.Tier:
    if not tier.is_root:
        pytest.skip("needs root: it creates users and runs the daemon as sidecar")
    return tier


@pytest.fixture(scope="session")
def sidecar_daemon(tier: _tier.Tier) -> Iterator[DaemonHandle]:
    """The daemon the tier's clients use.

    Root: started here as ``sidecar`` on ``/run/elspeth-test-sidecar``. Image: the image's own
    daemon if it runs (``/run/sidecar``), else a standalone daemon of ``appuser``'s (same code;
    its key and socket then belong to ``appuser``, which workers must not reach either).
    """
    if tier.is_root:
        with daemon_as_sidecar(
            python=tier.python,
            sidecar=tier.users["sidecar"],
            run_dir=Path("/run/elspeth-test-sidecar"),
            state_dir=Path("/var/lib/elspeth-test-sidecar"),
            config_dir=tier.home / "daemons",
            name="main",
        ) as handle:
            yield handle
        return
    if IMAGE_DAEMON_SOCKET.exists() and os.access(IMAGE_SESSION_KEY, os.R_OK):
        yield DaemonHandle(IMAGE_DAEMON_SOCKET, IMAGE_SESSION_KEY)
        return
    from elspeth.sidecar import start_standalone_daemon

    with start_standalone_daemon(state_dir=tier.appuser_dir / "sidecar-state") as standalone:
        yield DaemonHandle(
            standalone.socket_path,
            standalone.session_key_path,
            standalone.stderr_path,
            standalone.process,
        )
