"""The response cache on disk: keys, private modes, damaged entries."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from elspeth.llm import (
    CacheError,
    ChatRequest,
    Completion,
    EndpointIdentity,
    ResponseCache,
    cache_key,
)
from elspeth.security import SecurityLevel

IDENTITY = EndpointIdentity("openai", "https://example.org/v1", "m", {"temperature": 0, "seed": 1})
REQUEST = ChatRequest(({"role": "user", "content": "hello"},), repeat=0)
ANSWER = Completion('{"score": 3}', 10, 4, "stop")
LEVEL = SecurityLevel.OFFICIAL


def test_key_changes_with_everything_that_changes_the_answer() -> None:
    base = cache_key(IDENTITY, REQUEST, LEVEL)
    variants = [
        cache_key(
            EndpointIdentity("openai", "https://other/v1", "m", IDENTITY.parameters), REQUEST, LEVEL
        ),
        cache_key(
            EndpointIdentity("openai", IDENTITY.endpoint, "m2", IDENTITY.parameters), REQUEST, LEVEL
        ),
        cache_key(
            EndpointIdentity("openai", IDENTITY.endpoint, "m", {"temperature": 0, "seed": 2}),
            REQUEST,
            LEVEL,
        ),
        cache_key(
            EndpointIdentity(
                "azure_openai", IDENTITY.endpoint, "m", IDENTITY.parameters, deployment="d"
            ),
            REQUEST,
            LEVEL,
        ),
        cache_key(IDENTITY, ChatRequest(REQUEST.messages, repeat=1), LEVEL),
        cache_key(IDENTITY, ChatRequest(({"role": "user", "content": "hello!"},)), LEVEL),
        cache_key(IDENTITY, REQUEST, SecurityLevel.OFFICIAL_SENSITIVE),
    ]
    assert len({base, *variants}) == len(variants) + 1
    same = EndpointIdentity("openai", IDENTITY.endpoint, "m", {"seed": 1, "temperature": 0})
    assert cache_key(same, REQUEST, LEVEL) == base  # canonical: parameter order does not matter


def test_round_trip_and_level_is_part_of_the_lookup(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "cache") as cache:
        key = cache_key(IDENTITY, REQUEST, LEVEL)
        assert cache.get(key, LEVEL) is None
        cache.put(key, LEVEL, ANSWER)
        assert cache.get(key, LEVEL) == ANSWER
        assert len(cache) == 1
    with ResponseCache(tmp_path / "cache") as reopened:
        assert reopened.get(key, LEVEL) == ANSWER
        # A row stored under one level is never returned to a lookup at another.
        assert reopened.get(key, SecurityLevel.SECRET) is None
        assert reopened.misreads == 1


def test_files_and_directories_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # a permissive umask: modes must not depend on it
    try:
        with ResponseCache(tmp_path / "a" / "cache") as cache:
            cache.put(cache_key(IDENTITY, REQUEST, LEVEL), LEVEL, ANSWER)
            paths = [cache.directory, *cache.directory.iterdir()]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths}
    finally:
        os.umask(old_umask)
    assert modes.pop("cache") == 0o700
    assert {"responses.sqlite", "responses.sqlite-wal"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_a_directory_others_can_read_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(CacheError, match=r"mode 0755.*chmod 700"):
        ResponseCache(shared)


def test_damaged_entries_are_misses_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cache"
    key = cache_key(IDENTITY, REQUEST, LEVEL)
    with ResponseCache(directory) as cache:
        cache.put(key, LEVEL, ANSWER)
    db = sqlite3.connect(directory / "responses.sqlite")
    db.execute("UPDATE responses SET body = ? WHERE key = ?", (b'{"text": "tampered"', key))
    db.commit()
    db.close()
    with ResponseCache(directory) as cache:
        assert cache.get(key, LEVEL) is None
        assert cache.misreads == 1
        cache.put(key, LEVEL, ANSWER)  # the next good answer replaces it
        assert cache.get(key, LEVEL) == ANSWER
    assert "digest mismatch" in caplog.text
    assert "tampered" not in caplog.text


def test_a_database_that_is_not_sqlite_disables_the_cache_without_crashing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    (directory / "responses.sqlite").write_bytes(b"this is not a database at all" * 100)
    with ResponseCache(directory) as cache:
        assert not cache.usable
        assert cache.misreads == 1
        assert cache.get("00" * 32, LEVEL) is None
        cache.put("00" * 32, LEVEL, ANSWER)  # ignored, no exception
    assert "running without a cache" in caplog.text
