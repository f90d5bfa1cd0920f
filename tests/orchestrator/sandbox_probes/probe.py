"""Sandbox probe: apply (part of) the worker sandbox, try forbidden things, print JSON.

Run as ``python probe.py '<json config>'``; the sandbox is irreversible, so every test starts a
fresh probe. The config names the setup (``harden``, ``seccomp``, ``landlock`` or ``none``),
things to do before it (``start_thread``) and the actions to try afterwards; each action's
outcome is ``{"ok": true, "value": ...}`` or ``{"errno": "EPERM"}``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import mmap
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from elspeth.orchestrator.worker_process._sandbox import (
    SandboxError,
    SandboxLimits,
    SandboxPolicy,
    apply_landlock,
    apply_seccomp,
    default_read_exec_paths,
    default_read_only_paths,
    default_read_write_paths,
    harden_worker,
)

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
SYSCALL_NUMBERS = {
    "x86_64": {"clone": 56, "clone3": 435, "io_uring_setup": 425, "prctl": 157},
    "aarch64": {"clone": 220, "clone3": 435, "io_uring_setup": 425, "prctl": 167},
}[platform.machine()]
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_GET_NO_NEW_PRIVS = 39


def libc_call(result: int) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


def syscall(name: str, *args: int) -> int:
    ctypes.set_errno(0)
    return libc_call(LIBC.syscall(ctypes.c_long(SYSCALL_NUMBERS[name]), *map(ctypes.c_long, args)))


def in_child(body: Callable[[], object]) -> object:
    """Run ``body`` in a forked child; return its JSON outcome, or how the child died."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        outcome = attempt(body)
        os.write(write_end, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"signal": signal.Signals(os.WTERMSIG(status)).name}
    return json.loads(data)


def with_sleeping_child(body: Callable[[int], object]) -> object:
    """Fork a child that blocks on a pipe, run ``body(child_pid)``, then end the child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        return body(pid)
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)


def ptrace_child() -> object:
    def attach(pid: int) -> int:
        ctypes.set_errno(0)
        libc_call(LIBC.ptrace(ctypes.c_long(PTRACE_ATTACH), pid, None, None))
        os.waitpid(pid, 0)
        LIBC.ptrace(ctypes.c_long(PTRACE_DETACH), pid, None, None)
        return pid

    return with_sleeping_child(attach)


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def process_vm_readv_child() -> object:
    source = ctypes.create_string_buffer(b"secret!", 8)

    def read(pid: int) -> str:
        target = ctypes.create_string_buffer(8)
        local = IoVec(ctypes.cast(target, ctypes.c_void_p), 8)
        remote = IoVec(ctypes.cast(source, ctypes.c_void_p), 8)
        LIBC.process_vm_readv.restype = ctypes.c_ssize_t
        ctypes.set_errno(0)
        libc_call(LIBC.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
        return target.value.decode()

    return with_sleeping_child(read)


def make_socket(family: str, kind: str = "SOCK_STREAM") -> str:
    with socket.socket(getattr(socket, family), getattr(socket, kind)):
        return "created"


def socketpair() -> str:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        return right.recv(1).decode()


def io_uring_setup() -> int:
    params = ctypes.create_string_buffer(120)
    fd = syscall("io_uring_setup", 4, ctypes.addressof(params))
    os.close(fd)
    return fd


def unshare(flag: int) -> int:
    ctypes.set_errno(0)
    return libc_call(LIBC.unshare(flag))


def raw_clone(flags: int) -> int:
    pid = syscall("clone", flags | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def prctl_dumpable_high_bits() -> int:
    """``option`` is an ``int`` in the kernel: the upper half is dropped after seccomp looked."""
    return syscall("prctl", (1 << 32) | PR_SET_DUMPABLE, 1)


def prctl(option: int, arg: int = 0) -> int:
    ctypes.set_errno(0)
    return libc_call(LIBC.prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


def list_fds() -> list[int]:
    """Open descriptors; the listing's own descriptor is closed again by the time we check."""
    listed = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    return [fd for fd in listed if _is_open(fd)]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def rlimits() -> dict[str, list[int]]:
    names = ("RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE")
    return {name: list(resource.getrlimit(getattr(resource, name))) for name in names}


def read_file(path: str) -> int:
    with open(path, "rb") as handle:
        return len(handle.read(16))


def write_file(path: str) -> int:
    with open(path, "w", encoding="utf-8") as handle:
        return handle.write("written")


def tcp_connect(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return "connected"


def tcp_bind() -> int:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        return int(server.getsockname()[1])


def abstract_connect(name: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect("\0" + name)
        return "connected"


def signal_child() -> object:
    def terminate(pid: int) -> int:
        os.kill(pid, 0)
        return pid

    return with_sleeping_child(terminate)


def fork_pipe() -> object:
    return in_child(lambda: "child ran")


def multiprocessing_process() -> object:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_send_answer, args=(sender,))
    process.start()
    sender.close()
    answer = receiver.recv()
    process.join(timeout=10)
    return {"answer": answer, "exitcode": process.exitcode}


def _send_answer(connection: Any) -> None:
    connection.send(42)


def thread_after() -> str:
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append("thread ran"))
    thread.start()
    thread.join(timeout=10)
    return results[0]


def run_subprocess() -> int:
    return subprocess.run(["/bin/true"], check=False).returncode


def import_heavy() -> dict[str, object]:
    import pandas as pd
    import pyarrow as pa

    table = pa.Table.from_pandas(pd.DataFrame({"a": [1, 2, 3]}))
    return {"rows": table.num_rows, "threads": len(os.listdir("/proc/self/task"))}


def i386_socket() -> object:
    """``socket(AF_INET, SOCK_STREAM)`` through the 32-bit ``int 0x80`` entry on x86_64."""
    code = bytes.fromhex(
        "53"  # push rbx (callee-saved)
        "b867010000"  # mov eax, 359 (i386 socket)
        "bb02000000"  # mov ebx, AF_INET
        "b901000000"  # mov ecx, SOCK_STREAM
        "31d2"  # xor edx, edx
        "cd80"  # int 0x80
        "5b"  # pop rbx
        "c3"  # ret
    )
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    function = ctypes.CFUNCTYPE(ctypes.c_int)(address)
    return in_child(function)


ACTIONS: dict[str, Callable[..., object]] = {
    "socket": make_socket,
    "socketpair": socketpair,
    "io_uring_setup": io_uring_setup,
    "unshare_user": lambda: unshare(CLONE_NEWUSER),
    "clone_newuser": lambda: raw_clone(CLONE_NEWUSER),
    "clone_newnet": lambda: raw_clone(CLONE_NEWNET),
    "clone3": lambda: syscall("clone3", 0, 0),
    "ptrace_child": ptrace_child,
    "process_vm_readv_child": process_vm_readv_child,
    "setsid": os.setsid,
    "setpgid": lambda: os.setpgid(0, 0),
    "fork_setsid": lambda: in_child(os.setsid),
    "fork_setpgid": lambda: in_child(lambda: os.setpgid(0, 0)),
    "set_dumpable": lambda: prctl(PR_SET_DUMPABLE, 1),
    "set_dumpable_high_bits": prctl_dumpable_high_bits,
    "dumpable": lambda: prctl(PR_GET_DUMPABLE),
    "no_new_privs": lambda: prctl(PR_GET_NO_NEW_PRIVS),
    "list_fds": list_fds,
    "rlimits": rlimits,
    "read": read_file,
    "write": write_file,
    "tcp_connect": tcp_connect,
    "tcp_bind": tcp_bind,
    "abstract_connect": abstract_connect,
    "signal_parent": lambda: os.kill(os.getppid(), 0),
    "signal_child": signal_child,
    "fork": fork_pipe,
    "multiprocessing_process": multiprocessing_process,
    "thread_after": thread_after,
    "subprocess": run_subprocess,
    "import_heavy": import_heavy,
    "i386_socket": i386_socket,
}


def attempt(body: Callable[[], object]) -> dict[str, object]:
    try:
        return {"ok": True, "value": body()}
    except OSError as error:
        return {"errno": errno.errorcode.get(error.errno or 0, str(error.errno))}


def setup(config: dict[str, Any]) -> dict[str, object]:
    mode = config["setup"]
    scratch = config.get("scratch_dir", "")
    try:
        if mode == "harden":
            policy = config["policy"]
            report = harden_worker(
                SandboxPolicy(
                    scratch_dir=scratch,
                    limits=SandboxLimits(**policy["limits"]),
                    require_full=policy["require_full"],
                    landlock=policy.get("landlock", True),
                    seccomp=policy.get("seccomp", True),
                )
            )
            return {"ok": True, "report": report.as_dict()}
        if mode == "seccomp":
            return {"ok": True, "report": apply_seccomp().as_dict()}
        if mode == "landlock":
            status = apply_landlock(
                default_read_exec_paths(),
                scratch,
                read_only_paths=default_read_only_paths(),
                read_write_paths=default_read_write_paths(),
            )
            return {"ok": True, "report": status.as_dict()}
        return {"ok": True, "report": None}
    except SandboxError as error:
        return {"ok": False, "error": type(error).__name__, "message": str(error)}


def main() -> None:
    config = json.loads(sys.argv[1])
    if "start_thread" in config.get("before", ()):
        release = threading.Event()
        threading.Thread(target=release.wait, daemon=True).start()
    outcome: dict[str, object] = {"setup": setup(config), "results": []}
    if outcome["setup"]["ok"]:  # type: ignore[index]
        outcome["results"] = [
            attempt(functools.partial(ACTIONS[name], *args))
            for name, *args in config.get("actions", ())
        ]
    sys.stdout.write(json.dumps(outcome))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
