"""The plugin worker: ``python -I -m elspeth.orchestrator.worker_process``.

Start-up order is the security argument (``docs/worker-rpc.md``):

1. Without ``-I`` (the seed's manual ``sudo -u appplugin python -m ...``) the module re-executes
   itself with ``-I`` before importing anything else.
2. With only light imports loaded, it checks its environment against the allow-list and that it is
   single-threaded, reads the orchestrator's ``hello`` (its sandbox policy), creates its scratch
   directory and hardens itself (:func:`._sandbox.harden_worker`).
3. Only then does it import pyarrow (which starts threads) and, later, pandas and plugin code.
4. It keeps the channel off fd 1: spawned by the orchestrator, fd 0 is one socket used both ways
   and fd 1 is pointed at stderr; started on pipes by hand, fd 1 is first duplicated to a private
   descriptor. A plugin that prints cannot corrupt the channel either way.
"""

from __future__ import annotations

import sys

if not sys.flags.isolated:
    import os

    os.execv(  # noqa: S606 - re-executing ourselves with -I, argv list, no shell
        sys.executable,
        [sys.executable, "-I", "-m", "elspeth.orchestrator.worker_process", *sys.argv[1:]],
    )

import contextlib
import os
import stat
from collections.abc import Mapping
from typing import Any, Final

from elspeth.errors import ElspethError
from elspeth.orchestrator import _wire
from elspeth.orchestrator.worker_process import _sandbox
from elspeth.orchestrator.worker_process._channel import WorkerChannel

EXIT_OK: Final = 0
EXIT_SANDBOX: Final = 3

_POLICY_FIELDS: Final = frozenset({"scratch_dir", "require_full", "limits", "plugin_dirs"})


class WorkerStartupError(ElspethError):
    """The worker cannot start safely; it exits before loading any plugin."""


def main() -> int:
    try:
        _sandbox.check_environment(os.environ)
        _sandbox.assert_single_threaded()
        channel = WorkerChannel(0, 0 if _is_socket(0) else 1, _wire.DEFAULT_MAX_MESSAGE_BYTES)
        hello = _receive_hello(channel)
        policy = _policy_from(hello["sandbox"])
        report = _sandbox.harden_worker(policy)
    except (ElspethError, OSError) as error:
        print(f"elspeth worker: refusing to start: {error}", file=sys.stderr)
        return EXIT_SANDBOX
    if channel.out_fd == 1:
        channel.out_fd = os.dup(1)
    os.dup2(2, 1)
    channel.max_message = hello["max_message"]
    _load_data_libraries()
    channel.send(
        "ready", protocol=_wire.PROTOCOL_VERSION, pid=os.getpid(), sandbox=report.as_dict()
    )

    from elspeth.orchestrator.worker_process._loop import serve

    return serve(channel, plugin_dirs=tuple(hello["sandbox"]["plugin_dirs"]))


def _is_socket(fd: int) -> bool:
    return stat.S_ISSOCK(os.fstat(fd).st_mode)


def _receive_hello(channel: WorkerChannel) -> _wire.Message:
    hello = channel.receive()  # its conversation admits nothing but hello first
    if hello["protocol"] != _wire.PROTOCOL_VERSION:
        raise WorkerStartupError(
            f"orchestrator speaks protocol {hello['protocol']}, "
            f"this worker {_wire.PROTOCOL_VERSION}"
        )
    if hello["max_message"] < _wire.MIN_MAX_MESSAGE_BYTES:
        raise WorkerStartupError(f"max_message {hello['max_message']} is below the minimum")
    return hello


def _policy_from(fields: Mapping[str, Any]) -> _sandbox.SandboxPolicy:
    if set(fields) != _POLICY_FIELDS:
        raise WorkerStartupError(f"sandbox policy fields must be exactly {sorted(_POLICY_FIELDS)}")
    plugin_dirs = fields["plugin_dirs"]
    if not isinstance(plugin_dirs, list) or not all(isinstance(p, str) for p in plugin_dirs):
        raise WorkerStartupError("sandbox policy plugin_dirs must be a list of strings")
    if not isinstance(fields["require_full"], bool) or not isinstance(fields["limits"], dict):
        raise WorkerStartupError("sandbox policy require_full/limits have the wrong type")
    scratch = _make_scratch_dir(fields["scratch_dir"])
    os.environ["TMPDIR"] = scratch
    return _sandbox.SandboxPolicy(
        scratch_dir=scratch,
        limits=_sandbox.SandboxLimits(**fields["limits"]),
        require_full=fields["require_full"],
        read_exec_paths=(*_sandbox.default_read_exec_paths(), *plugin_dirs),
    )


def _make_scratch_dir(path: object) -> str:
    """Create this worker's private scratch directory, or accept one it already owns."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise WorkerStartupError(f"scratch directory must be an absolute path, got {path!r}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise WorkerStartupError(f"scratch directory {path} is not a directory this user owns")
    return path


def _load_data_libraries() -> None:
    """Import pyarrow now, after hardening, with its thread pools pinned to one thread.

    pandas (twice pyarrow's resident memory) is left to its first use — decoding a frame for a
    plugin, or a plugin module's own import — still after hardening, so an idle worker stays
    small; pandas starts no threads of its own.
    """
    import pyarrow

    pyarrow.set_cpu_count(1)
    pyarrow.set_io_thread_count(1)
