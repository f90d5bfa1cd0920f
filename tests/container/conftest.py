"""The container tier: set up podman and a local base image, build both targets once a session.

Root only (CI is root); anywhere else every test here skips with the reason. The first run on a
machine makes the debootstrap base image (cached under /var/cache/elspeth-container/); later
runs reuse it and podman's layer cache, so a session takes a few minutes.

The dev image's own test suite (the deployment document's ``docker run --rm elspeth:dev
pytest -v``) takes longer than the rest of the tier, so it starts in the background as soon as
the images are built and the test that reads its verdict runs last in the session
(:func:`tests.conftest.pytest_collection_modifyitems`): the two suites share the machine's time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.container import _podman

DEV_SUITE_CONTAINER = "elspeth-test-dev-suite"
#: The first host uid (and gid) the dev suite's container maps its ids 0-65535 to.
DEV_SUITE_HOST_IDS = 400_000


@pytest.fixture(scope="session")
def images() -> Iterator[str]:
    """Both images built from this tree; yields the base image they were built on. The dev
    image's whole suite starts in the background here (:func:`dev_suite`)."""
    reason = _podman.unavailable()
    if reason is not None:
        pytest.skip(f"container tier: {reason}")
    base = _podman.set_up_base_image()
    _podman.build("runtime", _podman.RUNTIME_IMAGE, base)
    _podman.build("dev", _podman.DEV_IMAGE, base)
    _podman.podman("rm", "--force", DEV_SUITE_CONTAINER)
    # Its own range of host uids: the kernel counts a worker's process limit (RLIMIT_NPROC) per
    # uid, so with the image's uids mapped as they are, this suite's workers would count against
    # those of every other container of the tier that runs workers at the same time.
    started = _podman.podman(
        "run",
        "--detach",
        f"--name={DEV_SUITE_CONTAINER}",
        f"--uidmap=0:{DEV_SUITE_HOST_IDS}:65536",
        f"--gidmap=0:{DEV_SUITE_HOST_IDS}:65536",
        _podman.DEV_IMAGE,
        "pytest",
        "-v",
    )
    if started.returncode != 0:
        raise RuntimeError(f"cannot start the dev image's suite: {started.stderr[-2000:]}")
    try:
        yield base
    finally:
        _podman.podman("rm", "--force", DEV_SUITE_CONTAINER)


@pytest.fixture(scope="session")
def dev_suite(images: str) -> str:
    """The name of the container running the dev image's whole suite (started by ``images``)."""
    return DEV_SUITE_CONTAINER
