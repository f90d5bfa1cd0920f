"""Runs to view, made by the real CLI (mock models, standalone daemon), and a viewer serving them
on loopback in a thread of the test process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from elspeth.view import ViewServer, open_run, viewed_runs
from tests.suite.conftest import run_cli
from tests.support.examples import EXAMPLES, example_settings, write_settings

HOSTILE_REPLY = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2"> high'
SAMPLE_ROWS = 60


def _only_run(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run_dir


def run_suite(settings_file: Path, directory: Path, *extra: str) -> Path:
    """The one run of ``settings_file``, in ``directory``/runs."""
    out = directory / "runs"
    result = run_cli(
        "--settings", settings_file, "--output-dir", out, "--state-dir", directory / "state",
        *extra,
    )  # fmt: skip
    assert result.code == 0, result.output
    return _only_run(out)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample suite on its first rows: three experiments, two scored criteria."""
    out = tmp_path_factory.mktemp("sample-run")
    return run_suite(EXAMPLES / "suite.yaml", out, "--head", str(SAMPLE_ROWS))


@pytest.fixture(scope="session")
def second_sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample again with the baseline's model on another seed: the "after" of a change."""
    settings = example_settings("suite.yaml")
    for model in settings["models"].values():
        if model.get("type") == "mock":
            model["seed"] = int(model.get("seed", 0)) + 100
    directory = tmp_path_factory.mktemp("second-run")
    settings_file = write_settings(settings, directory)
    return run_suite(settings_file, directory / "out", "--head", str(SAMPLE_ROWS))


@pytest.fixture(scope="session")
def graded_hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The graded example, one canned answer of the baseline's being HTML with a script, and one
    canned reply of the judge's having no grade."""
    settings = example_settings("suite-graded.yaml")
    settings["models"]["answerer"]["replies"].insert(0, HOSTILE_REPLY)
    # Some grades malformed: judge errors, whose reasons the table shows.
    settings["models"]["grader"]["replies"].append("I cannot decide.")
    settings["defaults"]["max_error_rate"] = 0.9
    directory = tmp_path_factory.mktemp("graded-run")
    settings_file = write_settings(settings, directory)
    return run_suite(settings_file, directory / "out", "--head", "20")


@contextlib.contextmanager
def serving(
    run_dirs: Sequence[Path], *, host: str = "127.0.0.1", token: str = "t" * 32
) -> Iterator[ViewServer]:
    labels = ("", "B:")
    runs = [open_run(d, label=label) for d, label in zip(run_dirs, labels, strict=False)]
    server = ViewServer(viewed_runs(runs, None), host, 0, token)
    thread = threading.Thread(target=server.serve_forever, name="elspeth-view", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
