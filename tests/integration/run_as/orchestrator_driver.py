"""The orchestrator side of the worker isolation tests, run as ``appuser`` (never root).

``python -I orchestrator_driver.py '<json settings>'`` starts a :class:`PluginRuntime` in sudo
mode against the real daemon, runs one scenario with the probe plugins, and prints JSON lines on
stdout: ``{"event": "paused", ...}`` (then it waits for a line on stdin, so the test can look at
the live workers from outside) and finally ``{"event": "result", ...}``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from elspeth.orchestrator._errors import PluginTimeoutError
from elspeth.orchestrator._runtime._config import RuntimeConfig, SpawnMode
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.security import SecureDataFrame, SecurityLevel
from elspeth.sidecar import SidecarClient

L = SecurityLevel


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def process_state(pid: int) -> str:
    """``gone``, ``zombie`` or the live state letter, from ``/proc`` (readable across users)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rpartition(b")")[2].split()[0].decode()
    except FileNotFoundError:
        return "gone"
    return "zombie" if state in ("Z", "X") else state


def children_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rpartition(b")")[2].split()
            except FileNotFoundError:
                continue
            if int(fields[1]) == pid:
                found.append(int(name))
    return found


def attempt(action: Callable[..., Any], *args: Any) -> dict[str, Any]:
    try:
        return {"ok": action(*args)}
    except OSError as error:
        return {"errno": errno.errorcode.get(error.errno or 0, str(error.errno))}


def files_in(directory: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(directory.iterdir()):
        info = path.stat()
        files[path.name] = {
            "path": str(path),
            "text": path.read_text("utf-8", "replace"),
            "mode": stat.S_IMODE(info.st_mode),
            "uid": info.st_uid,
        }
    return files


def make_frame(client: SidecarClient, level: SecurityLevel) -> SecureDataFrame:
    # Content of its own per level: the daemon refuses an origin frame below a live frame of
    # the same content (downgrade_refused), and one scenario makes frames at two levels.
    data = pd.DataFrame({"value": [1, 2, 3], "text": ["a", "b", "c"], "level": level.name})
    return SecureDataFrame.create_from_datasource(data, level, client)


def report_of(result: Any) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads(result.produced[0].data["report"].iloc[0])
    return facts


def isolation(settings: dict[str, Any], client: SidecarClient, config: RuntimeConfig) -> None:
    run_dir = config.log_dir.parent
    outputs = run_dir / "outputs"
    outputs.mkdir(mode=0o700)
    results = outputs / "results.csv"
    results.write_text("row,answer\n1,RUN-OUTPUT-CONTENT\n")
    with PluginRuntime(client, config) as runtime:
        sensitive = make_frame(client, L.OFFICIAL_SENSITIVE)
        other = report_of(
            runtime.run(
                "worker_identity",
                {},
                [sensitive],
                chunk_id="identity",
                plan_level=L.OFFICIAL_SENSITIVE,
            )
        )
        parameters = {
            "session_key_path": settings["session_key_path"],
            "socket_path": settings["socket_path"],
            "other_processes": {"orchestrator": os.getpid(), "other_worker": other["pid"]},
            "private_paths": [
                str(results),
                str(outputs),
                str(config.log_dir),
                str(run_dir / "operational.log"),
            ],
            "write_targets": settings["write_targets"],
            "stderr_sentinel": settings["stderr_sentinel"],
        }
        result = runtime.run(
            "isolation_probe",
            parameters,
            [make_frame(client, L.OFFICIAL)],
            chunk_id="isolation",
            plan_level=L.OFFICIAL,
        )
        facts = report_of(result)
        workers = [
            worker
            for level in (L.OFFICIAL, L.OFFICIAL_SENSITIVE)
            for worker in runtime.pool(level).workers
        ]
        emit("paused", worker_pids=[facts["identity"]["pid"], other["pid"]])
        sys.stdin.readline()
    emit(
        "result",
        orchestrator_pid=os.getpid(),
        facts=facts,
        other_worker=other,
        produced_level=result.produced[0].security_level.name,
        workers=[
            {
                "level": worker.level.name,
                "pgid": worker.pgid,
                "returncode": worker.returncode,
                "scratch_dir": worker.scratch_dir,
                "sandbox": worker.sandbox_report,
            }
            for worker in workers
        ],
        stderr_files=files_in(config.log_dir),
        operational_log=(run_dir / "operational.log").read_text(),
        private_files={"results": str(results), "outputs": str(outputs)},
    )


def runaway(settings: dict[str, Any], client: SidecarClient, config: RuntimeConfig) -> None:
    with PluginRuntime(client, config) as runtime:
        frame = make_frame(client, L.OFFICIAL)
        runtime.describe("runaway", {})
        runtime.pool(L.OFFICIAL).prestart()
        started = time.monotonic()
        failure: dict[str, str | None] = {"type": None, "message": "the runaway plugin returned"}
        try:
            runtime.run("runaway", {}, [frame], chunk_id="runaway-chunk", plan_level=L.OFFICIAL)
        except PluginTimeoutError as error:
            failure = {"type": type(error).__name__, "message": str(error)}
        elapsed = time.monotonic() - started
        marker = "RUNAWAY-PIDS "
        pids: dict[str, Any] = {}
        for file in files_in(config.log_dir).values():
            for line in file["text"].splitlines():
                if line.startswith(marker):
                    pids = json.loads(line[len(marker) :])
        states = {label: process_state(pid) for label, pid in pids.items() if isinstance(pid, int)}
        (replacement,) = runtime.pool(L.OFFICIAL).workers
        live_worker = children_of(replacement.pgid)
        signal_live_worker = attempt(os.kill, live_worker[0], 0)
    emit(
        "result",
        failure=failure,
        elapsed=elapsed,
        pids=pids,
        states_after_timeout=states,
        replacement_worker=live_worker,
        signal_live_worker=signal_live_worker,
        operational_log=(config.log_dir.parent / "operational.log").read_text(),
    )


SCENARIOS: dict[str, Callable[[dict[str, Any], SidecarClient, RuntimeConfig], None]] = {
    "isolation": isolation,
    "runaway": runaway,
}


def main() -> int:
    settings = json.loads(sys.argv[1])
    os.umask(0o077)
    run_dir = Path(settings["run_dir"])
    run_dir.mkdir(mode=0o700)
    handler = logging.FileHandler(run_dir / "operational.log")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler, logging.StreamHandler(sys.stderr)])
    config = RuntimeConfig(
        log_dir=run_dir / "worker-logs",
        mode=SpawnMode.SUDO,
        python=sys.executable,
        sudo=settings["sudo"],
        worker_user=settings["worker_user"],
        scratch_root=Path(settings["scratch_root"]),
        plugin_dirs=(Path(settings["plugin_dir"]),),
        pool_size=1,
        call_timeout=settings["call_timeout"],
        memory_limit_bytes=4 * 1024**3,
    )
    with SidecarClient.connect(settings["socket_path"], settings["session_key_path"]) as client:
        try:
            SCENARIOS[settings["scenario"]](settings, client, config)
        except Exception:
            # The workers' private stderr explains a failed probe; this is a test, so show it.
            for name, file in files_in(config.log_dir).items():
                print(f"--- {name}\n{file['text']}", file=sys.stderr)
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
