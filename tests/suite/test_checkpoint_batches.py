"""The checkpoint writer gathers answers into records: many answers per daemon round trip, none
lost at close, and a lone answer still reaches the file without waiting for close."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from elspeth.security import SealError
from elspeth.suite._checkpoint import (
    BATCH_ANSWERS,
    Answer,
    CheckpointWriter,
    read_checkpoint,
)

KEY = b"k" * 32


class FakeAuthority:
    """An HMAC in this process, counting round trips; ``gate`` can hold a MAC request back."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def checkpoint_mac(self, record: bytes) -> bytes:
        self.gate.wait()
        self.calls += 1
        return hmac.new(KEY, record, hashlib.sha256).digest()

    def checkpoint_verify(self, record: bytes, mac: bytes) -> bool:
        if not hmac.compare_digest(mac, hmac.new(KEY, record, hashlib.sha256).digest()):
            raise SealError("bad MAC")
        return True


def answer(row: int) -> Answer:
    return Answer(row, "score", 0, f"answer {row}", 3, 4, Decimal("0.001"))


def records(path: Path) -> list[list[int]]:
    lines = path.read_text("utf-8").splitlines()
    return [[a[0] for a in json.loads(json.loads(line)["record"])["answers"]] for line in lines]


def test_a_burst_of_answers_is_gathered_into_few_records(tmp_path: Path) -> None:
    authority = FakeAuthority()
    path = tmp_path / "checkpoint.jsonl"
    writer = CheckpointWriter(path, "fp", authority)
    for row in range(200):
        writer.append(answer(row))
    writer.close()
    batches = records(path)
    assert sorted(row for batch in batches for row in batch) == list(range(200))
    assert all(len(batch) <= BATCH_ANSWERS for batch in batches)
    assert len(batches) == authority.calls <= 200 // BATCH_ANSWERS + 1
    assert [a.row for a in read_checkpoint(path, "fp", authority)] == list(range(200))


def test_answers_trickling_in_share_a_record(tmp_path: Path) -> None:
    authority = FakeAuthority()
    path = tmp_path / "checkpoint.jsonl"
    writer = CheckpointWriter(path, "fp", authority)
    for row in range(10):  # 10 answers 1 ms apart: well inside one gathering window
        writer.append(answer(row))
        time.sleep(0.001)
    writer.close()
    assert sum(len(batch) for batch in records(path)) == 10
    assert len(records(path)) < 10


def test_a_lone_answer_is_written_without_close(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.jsonl"
    writer = CheckpointWriter(path, "fp", FakeAuthority())
    try:
        writer.append(answer(7))
        deadline = time.monotonic() + 30
        while not path.read_text("utf-8"):
            assert time.monotonic() < deadline, "the answer never reached the checkpoint"
            time.sleep(0.005)
        assert records(path) == [[7]]
    finally:
        writer.close()


def test_close_writes_what_is_gathered_and_what_is_queued(tmp_path: Path) -> None:
    authority = FakeAuthority()
    authority.gate.clear()  # the first MAC request is held: later answers queue behind it
    path = tmp_path / "checkpoint.jsonl"
    writer = CheckpointWriter(path, "fp", authority)
    writer.append(answer(0))
    time.sleep(0.1)  # past the gathering window: record [0] waits for its MAC
    for row in range(1, 100):
        writer.append(answer(row))
    closing = threading.Thread(target=writer.close)
    closing.start()
    authority.gate.set()
    closing.join(30)
    assert not closing.is_alive()
    assert sorted(row for batch in records(path) for row in batch) == list(range(100))


def test_a_daemon_failure_is_raised_at_close(tmp_path: Path) -> None:
    class Failing(FakeAuthority):
        def checkpoint_mac(self, record: bytes) -> bytes:
            raise SealError("daemon gone")

    writer = CheckpointWriter(tmp_path / "checkpoint.jsonl", "fp", Failing())
    writer.append(answer(0))
    with pytest.raises(SealError, match="daemon gone"):
        writer.close()
