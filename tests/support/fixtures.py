"""Shared pytest fixtures, registered for every test directory by tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.openai_server import OpenAIServer, ServerConfig

MakeServer = Callable[..., OpenAIServer]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Start loopback OpenAI-compatible servers with the given ServerConfig fields; all stop
    when the test ends."""
    servers: list[OpenAIServer] = []

    def start(**config: Any) -> OpenAIServer:
        server = OpenAIServer(ServerConfig(**config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
