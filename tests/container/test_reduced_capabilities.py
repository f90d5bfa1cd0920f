"""The root test tier as root in a container with a container's default capabilities.

A CI runner's or a developer's container is root without CAP_SYS_PTRACE (podman and docker drop
it), and such a root cannot read ``/proc/<pid>/environ`` of another user's process. The root
tier must find that out up front and prove a worker's environment another way; it must never
error. Here it runs from the dev image as root (its users, Debian python3 and sudo are what the
tier's provisioning needs), with ``ELSPETH_REQUIRE_ISOLATION_TESTS=1`` so that a skip fails too.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from tests.container._podman import BUILD_TIMEOUT, CA_BUNDLE, DEV_IMAGE, RUN_TIMEOUT, podman

#: The tier provisions a virtualenv from the package index, then runs about two minutes.
TIER_TIMEOUT = 900.0

# The first container test's setup builds both images; this one may be that first test.
pytestmark = [pytest.mark.container, pytest.mark.timeout(2 * BUILD_TIMEOUT + TIER_TIMEOUT)]

CAP_SYS_PTRACE = 19

#: Run in /app as root: whether root holds CAP_SYS_PTRACE, and what the tier's detection says.
DETECTION = f"""
import json
from tests.integration._processes import Account
from tests.integration._tier import reads_environ_of
with open("/proc/self/status") as status:
    (effective,) = [line.split()[1] for line in status if line.startswith("CapEff:")]
print(json.dumps({{
    "sys_ptrace": bool(int(effective, 16) >> {CAP_SYS_PTRACE} & 1),
    "reads_worker_environ": reads_environ_of(Account.lookup("appplugin")),
}}))
"""


def as_root_in_dev_image(
    capabilities: str, script: str, *, env: dict[str, str] | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``bash -c SCRIPT`` as root in a fresh dev container, no entrypoint (nothing started).

    The host network and CA bundle are there for the tier's own ``pip install`` (as for the
    image builds); nothing else reaches out.
    """
    options = [f"--env={name}={value}" for name, value in (env or {}).items()]
    if CA_BUNDLE.exists():
        options += [f"--volume={CA_BUNDLE}:/etc/ssl/host-ca.crt:ro"]
        options += ["--env=PIP_CERT=/etc/ssl/host-ca.crt"]
    return podman(
        "run",
        "--rm",
        "--network=host",
        "--user=root",
        capabilities,
        *options,
        "--entrypoint=/bin/bash",
        DEV_IMAGE,
        "-c",
        script,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("capabilities", "readable"),
    [("--cap-drop=SYS_PTRACE", False), ("--cap-add=SYS_PTRACE", True)],
)
def test_the_tier_detects_whether_root_may_read_a_workers_environment(
    images: str, capabilities: str, readable: bool
) -> None:
    done = as_root_in_dev_image(
        capabilities, f"cd /app && python -c {shlex.quote(DETECTION)}", timeout=RUN_TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"sys_ptrace": readable, "reads_worker_environ": readable}


def test_the_root_tier_passes_as_root_without_cap_sys_ptrace(images: str) -> None:
    """Every test of ``tests/integration`` passes: none errors, fails or skips."""
    # The image's production sudoers rule (for /opt/venv) would be listed beside the one the
    # tier installs for its own virtualenv, and the tier asserts that its rule is all appuser
    # may run; without it the container is the plain root machine the tier provisions.
    script = (
        "rm -f /etc/sudoers.d/elspeth && cd /app && "
        "exec python -m pytest -p no:cacheprovider -q -rfEs tests/integration"
    )
    done = as_root_in_dev_image(
        "--cap-drop=SYS_PTRACE",
        script,
        env={"ELSPETH_REQUIRE_ISOLATION_TESTS": "1"},
        timeout=TIER_TIMEOUT,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary, output[-6000:]
    assert not [word for word in ("error", "failed", "skipped") if word in summary], summary
