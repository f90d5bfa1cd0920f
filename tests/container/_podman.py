"""Driving the real image with podman: set-up, builds, runs with deadlines."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.capabilities import missing_capabilities

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "container-setup.sh"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RUNTIME_IMAGE = "elspeth:latest"
DEV_IMAGE = "elspeth:dev"
BUILD_TIMEOUT = 1800.0
RUN_TIMEOUT = 300.0


#: What rootful podman and debootstrap need beyond uid 0: mounts and namespaces for every
#: container, device nodes for a root file system. A container's default capability set (as in
#: a CI runner's or a developer's container) drops both, and then every build errors.
NEEDED_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_MKNOD")


def unavailable() -> str | None:
    """Why the container tier cannot run here (or None)."""
    if os.geteuid() != 0:
        return (
            "needs root (podman, a debootstrap base image and containers.conf are set up as root)"
        )
    missing = missing_capabilities(*NEEDED_CAPABILITIES)
    if missing:
        return (
            f"root here lacks {', '.join(missing)} (a container's default capabilities), which "
            "podman and debootstrap need; run on a host or a --privileged container"
        )
    if shutil.which("podman") is None and shutil.which("apt-get") is None:
        return "podman is not installed and there is no apt-get to install it"
    return None


def podman(
    *arguments: str, timeout: float = RUN_TIMEOUT, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGUMENTS``; never raises on a non-zero status (callers assert on it)."""
    return subprocess.run(
        ["podman", *arguments],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def set_up_base_image() -> str:
    done = subprocess.run(
        ["bash", str(SETUP_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{SETUP_SCRIPT} failed:\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


def build(target: str, tag: str, base_image: str) -> None:
    """``podman build --network=host`` of one Dockerfile target, the host CA bundle a secret."""
    secret = [f"--secret=id=ca-bundle,src={CA_BUNDLE}"] if CA_BUNDLE.exists() else []
    done = podman(
        "build",
        "--network=host",
        *secret,
        f"--build-arg=BASE_IMAGE={base_image}",
        f"--target={target}",
        f"--tag={tag}",
        str(REPO_ROOT),
        timeout=BUILD_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"podman build --target {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Container:
    """A detached container, removed (forcibly) when the test is done with it."""

    name: str

    @classmethod
    def start(cls, name: str, options: Sequence[str], image: str = RUNTIME_IMAGE) -> Container:
        podman("rm", "--force", "--ignore", name)
        done = podman("run", "--detach", f"--name={name}", *options, image)
        assert done.returncode == 0, done.stderr
        return cls(name)

    def exec(self, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        as_user = [f"--user={user}"] if user else []
        return podman("exec", *as_user, self.name, *command)

    def status(self) -> str:
        return podman("inspect", "--format={{.State.Status}}", self.name).stdout.strip()

    def wait_until_daemon_running(self) -> None:
        def running() -> bool:
            done = self.exec("supervisorctl", "status", "sidecar-daemon")
            return (
                "RUNNING" in done.stdout
                and self.exec("test", "-S", "/run/sidecar/auth.sock").returncode == 0
            )

        wait_for(running, f"the sidecar daemon in {self.name}")

    def remove(self) -> None:
        podman("rm", "--force", "--time=5", self.name)
