"""Fixtures: a real loopback OpenAI-compatible server per test, and an API key in the env."""

from __future__ import annotations

import pytest

from tests.support.fixtures import MakeServer
from tests.support.openai_server import OpenAIServer

KEY_VARIABLE = "ELSPETH_TEST_LLM_KEY"
#: Recognisable, so a test can search every output for it.
SECRET_KEY = "sk-elspeth-TEST-9f8e7d6c5b4a-never-leak"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, SECRET_KEY)
    return KEY_VARIABLE


@pytest.fixture
def server(make_server: MakeServer) -> OpenAIServer:
    return make_server()
