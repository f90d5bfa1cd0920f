"""Open the seal authority the settings ask for: a private standalone daemon or the deployed one."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from elspeth.config import SidecarSettings
from elspeth.sidecar import SidecarClient, StandaloneDaemon, start_standalone_daemon

log = logging.getLogger("elspeth.suite")


@contextlib.contextmanager
def open_authority(
    settings: SidecarSettings,
    *,
    state_dir: Path | None = None,
    started: Callable[[], StandaloneDaemon] | None = None,
) -> Iterator[SidecarClient]:
    """Yield a connected client; in standalone mode the daemon lives as long as the block.
    ``started`` gives a daemon started ahead for this run (with this ``state_dir``) instead
    of starting one here."""
    if settings.mode == "standalone":
        daemon = start_standalone_daemon(state_dir=state_dir) if started is None else started()
        with daemon, daemon.connect() as client:
            yield client
        return
    client = SidecarClient.wait_until_ready(
        settings.socket_path, settings.session_key_path, settings.ready_timeout_seconds
    )
    with client:
        log.info("connected to the sidecar daemon at %s", settings.socket_path)
        yield client
