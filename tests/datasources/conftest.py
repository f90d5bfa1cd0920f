"""A real standalone seal authority for datasource and sink tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from elspeth.sidecar import SidecarClient, StandaloneDaemon, start_standalone_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneDaemon]:
    with start_standalone_daemon(state_dir=tmp_path_factory.mktemp("state")) as running:
        yield running


@pytest.fixture
def authority(daemon: StandaloneDaemon) -> Iterator[SidecarClient]:
    with daemon.connect(op_timeout=10.0) as client:
        yield client
