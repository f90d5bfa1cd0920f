"""Running things as other users, with deadlines, and reading JSON lines from them."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")

#: The environment every process started here gets, plus what a caller adds on purpose.
BASE_ENVIRONMENT: Mapping[str, str] = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True, slots=True)
class Account:
    """A local user as the kernel will see it: uid, primary gid and supplementary groups."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> Account:
        entry = pwd.getpwnam(name)
        groups = tuple(sorted(set(os.getgrouplist(name, entry.pw_gid))))
        return cls(name, entry.pw_uid, entry.pw_gid, groups)

    def in_group(self, group: str) -> bool:
        try:
            return grp.getgrnam(group).gr_gid in self.groups
        except KeyError:
            return False

    def is_current(self) -> bool:
        return os.geteuid() == self.uid

    def process_options(self) -> dict[str, Any]:
        """``Popen`` keyword arguments that start a child as this account (from root), or none
        when we already are this account. ``extra_groups`` is always explicit: without it the
        child would keep root's supplementary groups."""
        if self.is_current():
            return {}
        if os.geteuid() != 0:
            raise PermissionError(f"only root can start a process as {self.name}")
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def run_as(
    account: Account,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``account`` from ``/`` with a minimal environment; never raises on status."""
    return subprocess.run(
        list(argv),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
        env={**BASE_ENVIRONMENT, **(env or {})},
        close_fds=True,
        **account.process_options(),
    )


def run_json_as(
    account: Account,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Any:
    """Run a helper that prints one JSON document; raise with its stderr if it did not."""
    done = run_as(account, argv, env=env, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(
            f"{argv[-2:]} as {account.name} exited {done.returncode}:\n{done.stderr[-4000:]}"
        )
    return json.loads(done.stdout)


def wait_for(condition: Callable[[], _T], timeout: float, what: str, *, poll: float = 0.02) -> _T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` at the end."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


@dataclass(frozen=True, slots=True)
class ProcessLine:
    pid: int
    ppid: int
    state: str
    command: str

    @property
    def alive(self) -> bool:
        return not self.state.startswith(("Z", "X"))


def processes_of(account: Account) -> list[ProcessLine]:
    """What ``ps -u USER`` shows for the account, zombies included."""
    done = subprocess.run(
        ["ps", "-o", "pid=,ppid=,stat=,args=", "-u", str(account.uid)],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    # ps exits 1 when nothing matches.
    lines = []
    for line in done.stdout.splitlines():
        pid, ppid, state, *command = line.split(None, 3)
        lines.append(ProcessLine(int(pid), int(ppid), state, " ".join(command)))
    return lines


def live_processes_of(account: Account) -> list[ProcessLine]:
    """Processes of the account that can still run. A zombie cannot; its parent reaps it (an
    orphan's is pid 1, and some minimal inits, like this machine's VM agent, never do)."""
    return [line for line in processes_of(account) if line.alive]


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(timeout)


class JsonLines:
    """Reads newline-terminated JSON messages from a child's stdout with a deadline per read."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self._process = process
        self._fd = process.stdout.fileno()
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def next(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no message from pid {self._process.pid} in {timeout:g} s")
            if self._selector.select(remaining):
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    raise AssertionError(
                        f"pid {self._process.pid} closed its output; partial: {self._buffer!r}"
                    )
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        self._selector.close()
