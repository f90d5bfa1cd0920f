"""Fixtures: one real standalone sidecar daemon per session, and runtimes with real workers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from elspeth.orchestrator._runtime._config import RuntimeConfig
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.security import SecureDataFrame, SecurityLevel
from elspeth.sidecar import SidecarClient, StandaloneDaemon, start_standalone_daemon

WORKER_PLUGINS = Path(__file__).parent / "worker_plugins"

MakeRuntime = Callable[..., PluginRuntime]
MakeFrame = Callable[..., SecureDataFrame]


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneDaemon]:
    with start_standalone_daemon(state_dir=tmp_path_factory.mktemp("sidecar-state")) as running:
        yield running


@pytest.fixture(scope="session")
def authority(daemon: StandaloneDaemon) -> Iterator[SidecarClient]:
    with daemon.connect() as client:
        yield client


def runtime_config(base: Path, **overrides: Any) -> RuntimeConfig:
    settings: dict[str, Any] = {
        "log_dir": base / "worker-logs",
        "scratch_root": base / "scratch",
        "plugin_dirs": (WORKER_PLUGINS,),
        "pool_size": 1,
        "call_timeout": 30.0,
        "memory_limit_bytes": 4 * 1024**3,
        **overrides,
    }
    return RuntimeConfig(**settings)


@pytest.fixture(scope="module")
def shared_runtime(
    authority: SidecarClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PluginRuntime]:
    """One runtime for tests that leave its workers healthy (saves spawning)."""
    base = tmp_path_factory.mktemp("shared-runtime")
    with PluginRuntime(authority, runtime_config(base, pool_size=2)) as runtime:
        yield runtime


def prestart(runtime: PluginRuntime, level: SecurityLevel = SecurityLevel.OFFICIAL) -> None:
    """Spawn the catalog worker and fill ``level``'s pool before a test times anything, so that
    a short ``call_timeout`` never has to cover a worker's start-up and first imports."""
    runtime._catalog.prestart()
    runtime.pool(level).prestart()


@pytest.fixture
def make_runtime(authority: SidecarClient, tmp_path: Path) -> Iterator[MakeRuntime]:
    runtimes: list[PluginRuntime] = []

    def make(**overrides: Any) -> PluginRuntime:
        runtime = PluginRuntime(authority, runtime_config(tmp_path, **overrides))
        runtimes.append(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        runtime.close()


@pytest.fixture
def make_frame(authority: SidecarClient) -> Iterator[MakeFrame]:
    made: list[SecureDataFrame] = []

    def make(
        data: pd.DataFrame | None = None, level: SecurityLevel = SecurityLevel.OFFICIAL
    ) -> SecureDataFrame:
        if data is None:
            data = pd.DataFrame({"value": [1, 2, 3], "text": ["score: 4", "score: 9", "none"]})
        frame = SecureDataFrame.create_from_datasource(data, level, authority)
        made.append(frame)
        return frame

    yield make
    # The shared client outlives the test: retire its origin frames, or the daemon would refuse
    # the next test's frame of the same sample data at a lower level.
    for frame in made:
        frame.retire()


def with_config(runtime: PluginRuntime, **changes: Any) -> RuntimeConfig:
    return dataclasses.replace(runtime.config, **changes)


def wait_for_text(path: Path, text: str, timeout: float = 5.0) -> bool:
    """Whether ``text`` shows up in ``path`` within ``timeout``: a worker's stderr reaches its
    file through a reader thread, after the worker's reply."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return True
        time.sleep(0.02)
    return False


def assert_serves_a_call(runtime: PluginRuntime, make_frame: MakeFrame) -> None:
    """The runtime's worker still answers a plain call with a sealed frame."""
    result = runtime.run(
        "score_extractor",
        {"source": "text", "output": "s", "pattern": r"(\d+)"},
        [make_frame()],
        chunk_id="after",
        plan_level=SecurityLevel.OFFICIAL,
    )
    assert result.produced[0].verify_seal() > 0
