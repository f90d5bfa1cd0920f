"""The deployment document's test command, ``docker run --rm elspeth:dev pytest -v``: the dev
image passes its whole suite (every tier that can run inside it), with nothing failed or in
error. Its run started in the background when the images were built; this test, last in the
session, waits for its verdict."""

from __future__ import annotations

import re

import pytest

from tests.container._podman import BUILD_TIMEOUT, podman

#: The image's suite alone takes 10-20 minutes on two cores; it shares them with the host's.
SUITE_TIMEOUT = 3600.0

pytestmark = [
    pytest.mark.container,
    pytest.mark.timeout(2 * BUILD_TIMEOUT + SUITE_TIMEOUT),
    pytest.mark.last_in_session,
]


def test_the_dev_image_passes_its_whole_suite(dev_suite: str) -> None:
    waited = podman("wait", dev_suite, timeout=SUITE_TIMEOUT)
    assert waited.returncode == 0, waited.stderr
    exit_code = waited.stdout.strip()
    logs = podman("logs", dev_suite)
    output = logs.stdout + logs.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else "(no output)"
    assert exit_code == "0", output[-6000:]
    assert re.search(r"\b\d+ passed\b", summary), summary
    assert not re.search(r"\b(failed|errors?)\b", summary), summary
