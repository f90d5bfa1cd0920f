"""Loading settings imports aiohttp only when an HTTP model is built: a mock-model suite (the
bundled sample) and ``elspeth validate`` never pay for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_settings_and_the_mock_client_do_not_import_aiohttp() -> None:
    script = textwrap.dedent(
        """
        import sys
        import elspeth.config, elspeth.llm, elspeth.suite
        assert "aiohttp" not in sys.modules, "loading the settings modules imported aiohttp"
        client = elspeth.llm.create_client("mock", {})
        assert "aiohttp" not in sys.modules, "the mock client imported aiohttp"
        elspeth.llm.create_client("openai", {"base_url": "http://127.0.0.1:9", "model": "m"})
        assert "aiohttp" in sys.modules, "the openai client did not import aiohttp"
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
