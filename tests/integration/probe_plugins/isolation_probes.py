"""Probe plugins for the root tier: they try what a hostile plugin would and report the facts.

Loaded from a plugin directory by real workers running as ``appplugin``. Every attempt becomes
an outcome, ``{"ok": value}`` or ``{"errno": "EACCES"}``, returned as data (one JSON cell), so
the test decides what is right. Standard library only besides the plugin API and pandas.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import pydantic

from elspeth.plugins import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.security import SecurityLevel

#: Socket families 0 .. AF_MAX-1 of current Linux kernels: seccomp must refuse every one.
SOCKET_FAMILIES = range(46)


def attempt(action: Callable[..., Any], *args: Any) -> dict[str, Any]:
    try:
        return {"ok": action(*args)}
    except OSError as error:
        return {"errno": errno.errorcode.get(error.errno or 0, str(error.errno))}


def read_bytes(path: str) -> int:
    with open(path, "rb") as handle:
        return len(handle.read(64))


def list_directory(path: str) -> int:
    return len(os.listdir(path))


def read_private(path: str) -> int:
    return list_directory(path) if os.path.isdir(path) else read_bytes(path)


def create_file_in(directory: str) -> str:
    path = os.path.join(directory, f"probe-{secrets.token_hex(6)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(path)
    return path


def open_socket(family: int, kind: int = socket.SOCK_STREAM) -> str:
    with socket.socket(family, kind):
        return "opened"


def open_socket_pair() -> int:
    left, right = socket.socketpair()
    left.close()
    right.close()
    return 2


def connect_unix(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(path)
        return "connected"


def open_descriptors() -> dict[str, str]:
    """Descriptor -> what it refers to. The listing's own descriptors (``listdir`` opens one and
    may duplicate it) are closed again when it returns, so only those still open are real."""
    targets = {}
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            targets[name] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            continue
    return targets


def identity() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgrp": os.getpgrp(),
        "sid": os.getsid(0),
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
    }


def original_environ_block() -> str:
    """The environment block the kernel laid out at ``execve``, read from this process's own
    memory (base64): the very bytes ``/proc/<pid>/environ`` shows from outside.

    A non-dumpable worker may not open its own ``/proc/self/environ`` (it belongs to root then),
    and only root with CAP_SYS_PTRACE may open another user's, which a container's default
    capabilities do not grant; but ``/proc/self/stat`` still gives a process the block's bounds,
    and its own memory is always its to read. Unlike ``os.environ``, this shows what the worker
    was started with even if something removed a variable from ``os.environ`` afterwards.
    """
    with open("/proc/self/stat", "rb") as handle:
        # After the parenthesised command name come fields 3 onwards (proc(5) numbers from 1);
        # env_start and env_end are fields 50 and 51.
        fields = handle.read().rpartition(b")")[2].split()
    start, end = int(fields[50 - 3]), int(fields[51 - 3])
    if not 0 < start < end:
        raise OSError(errno.ENODATA, f"/proc/self/stat gives no environment bounds: {start}, {end}")
    return base64.b64encode(ctypes.string_at(start, end - start)).decode()


def report(proxy: FrameProxy, facts: dict[str, Any]) -> None:
    view = proxy.get_view()
    proxy.replace_data(pd.DataFrame({"report": [json.dumps(facts)]}), view.version)


class WorkerIdentity(Plugin):
    """Reports who and where the worker is (the other worker's pid, for the probe), and the
    environment it was started with."""

    name = "worker_identity"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        report(proxies[0], {**identity(), "environ_block": attempt(original_environ_block)})


class IsolationParameters(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    session_key_path: str
    socket_path: str
    #: label -> pid of a process whose /proc/<pid>/environ and mem the worker tries to read.
    other_processes: dict[str, int]
    #: files and directories private to the orchestrator's user (run outputs, worker logs).
    private_paths: list[str]
    #: directories the worker tries to create a file in (its own scratch is added).
    write_targets: list[str]
    stderr_sentinel: str


class IsolationProbe(Plugin):
    """Tries every way out of the sandbox a hostile plugin would, and reports each outcome."""

    name = "isolation_probe"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    Parameters = IsolationParameters

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        params = self.parameters
        assert isinstance(params, IsolationParameters)
        scratch = os.environ["TMPDIR"]
        print(params.stderr_sentinel, file=sys.stderr, flush=True)
        os.write(2, f"{params.stderr_sentinel} (raw descriptor 2)\n".encode())
        facts = {
            "identity": identity(),
            "descriptors": open_descriptors(),
            "environment": dict(os.environ),
            "own_environ_block": attempt(read_bytes, "/proc/self/environ"),
            "environ_block": attempt(original_environ_block),
            "sidecar_modules": sorted(name for name in sys.modules if "sidecar" in name),
            "read_session_key": attempt(read_bytes, params.session_key_path),
            "connect_daemon": attempt(connect_unix, params.socket_path),
            "sockets": {str(family): attempt(open_socket, family) for family in SOCKET_FAMILIES},
            "udp_socket": attempt(open_socket, socket.AF_INET, socket.SOCK_DGRAM),
            "socketpair": attempt(open_socket_pair),
            "other_processes": {
                label: {
                    "environ": attempt(read_bytes, f"/proc/{pid}/environ"),
                    "mem": attempt(read_bytes, f"/proc/{pid}/mem"),
                }
                for label, pid in params.other_processes.items()
            },
            "private_reads": {path: attempt(read_private, path) for path in params.private_paths},
            "scratch": scratch,
            "writes": {
                directory: attempt(create_file_in, directory)
                for directory in [scratch, *params.write_targets]
            },
            "setsid": attempt(os.setsid),
            "setpgid": attempt(os.setpgid, 0, 0),
            "identity_after": identity(),
        }
        report(proxies[0], facts)


class Runaway(Plugin):
    """Ignores SIGTERM and double-forks a grandchild that ignores it too, after the child tried
    ``setsid``; the child exits, so the grandchild is an orphan in the worker's process group.
    Reports the pids on stderr, then never returns."""

    name = "runaway"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            setsid = attempt(os.setsid)
            grandchild = os.fork()
            if grandchild == 0:
                os.close(write_end)
                _sleep_forever()
            os.write(write_end, json.dumps({"grandchild": grandchild, "setsid": setsid}).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            from_child = json.loads(pipe.read())
        os.waitpid(child, 0)
        pids = {"worker": os.getpid(), "child": child, **from_child}
        os.write(2, f"RUNAWAY-PIDS {json.dumps(pids)}\n".encode())
        _sleep_forever()


def _sleep_forever() -> None:
    while True:
        time.sleep(3600)
