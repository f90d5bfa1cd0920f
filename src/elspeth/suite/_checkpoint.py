"""Checkpoints: finished LLM answers, MAC'd by the daemon's persistent checkpoint key, so an
interrupted run (even ``kill -9``) resumes without calling the model again for finished rows.

Answers are written in batches: each line holds one record (the settings fingerprint and up to
:data:`BATCH_ANSWERS` answers) and the daemon's MAC over it, so a burst of answers costs one daemon
round trip and one flush. The writer gathers a batch for at most :data:`GATHER_SECONDS` after its
first answer arrives (less when the batch fills first), so an answer reaches the file within that
bound plus one round trip; closing the writer writes whatever is gathered at once. A ``kill -9``
loses only answers still being gathered, and a resumed run asks the model for those again.

A record holds row content (answer text), so the file is private (0600) and lives in the run
directory beside the outputs. On resume every record is verified by the (possibly restarted)
daemon; one that does not verify stops the run as a security refusal.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

from elspeth.errors import ConfigurationError
from elspeth.security import SealError

BATCH_ANSWERS: Final = 64
"""Answers per record at most; sized so a record stays far below the daemon's record limit."""
BATCH_BYTES: Final = 128 * 1024
"""Bytes of answer text per record at most (the daemon's default record limit is 256 KiB)."""
GATHER_SECONDS: Final = 0.08
"""How long a batch may wait for more answers after its first, at most. At concurrency 50 and
50 ms per answer (1,000 answers a second) a batch fills (:data:`BATCH_ANSWERS`) well before it;
at half that rate (a loaded machine) it still gathers about 40. It bounds what a ``kill -9`` can
cost (answers asked again on resume), never what a finished run keeps."""


class CheckpointAuthority(Protocol):
    def checkpoint_mac(self, record: bytes) -> bytes: ...

    def checkpoint_verify(self, record: bytes, mac: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """One finished (row, criterion, repeat) answer, as the checkpoint keeps it."""

    row: int
    criterion: str
    repeat: int
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.row, self.criterion, self.repeat)

    def as_list(self) -> list[Any]:
        return [
            self.row,
            self.criterion,
            self.repeat,
            self.text,
            self.prompt_tokens,
            self.completion_tokens,
            str(self.cost),
        ]

    @classmethod
    def from_list(cls, item: Sequence[Any]) -> Answer:
        row, criterion, repeat, text, prompt_tokens, completion_tokens, cost = item
        return cls(
            int(row),
            str(criterion),
            int(repeat),
            str(text),
            int(prompt_tokens),
            int(completion_tokens),
            Decimal(cost),
        )


def _encode(fingerprint: str, answers: Sequence[Answer]) -> bytes:
    payload = {"fingerprint": fingerprint, "answers": [a.as_list() for a in answers]}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


class CheckpointWriter:
    """Appends MAC'd batches of answers for one experiment from a background thread.

    The LLM stage hands answers over from its event loop; the daemon round trip for each MAC and
    the flush happen here, once per batch gathered (see :data:`GATHER_SECONDS`). A failure of the
    daemon is raised at the next :meth:`append` or at :meth:`close` (fail closed).
    """

    _STOP: Final = object()

    def __init__(self, path: Path, fingerprint: str, authority: CheckpointAuthority) -> None:
        self.path = path
        self._fingerprint = fingerprint
        self._authority = authority
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(descriptor, 0o600)
        self._file = os.fdopen(descriptor, "a", encoding="utf-8")
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._wake = threading.Event()
        self._appended = 0  # answers handed over (by the appending thread)
        self._taken = 0  # answers taken off the queue (by the drain thread)
        self._thread = threading.Thread(target=self._drain, name="checkpoint", daemon=True)
        self._thread.start()

    def append(self, answer: Answer) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.put(answer)
        self._appended += 1  # only this thread writes it; the drain thread reads it
        if self._appended - self._taken >= BATCH_ANSWERS:
            self._wake.set()  # a full record is waiting: no need to gather longer

    def _drain(self) -> None:
        """Wait for an answer, gather for up to :data:`GATHER_SECONDS` (cut short by a full
        record or by :meth:`close`), then write everything queued, a record per
        :data:`BATCH_ANSWERS`. While it gathers, this thread sleeps on an event instead of
        waking for every answer, so handing an answer over costs the event loop next to nothing.
        """
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is not self._STOP:
                self._wake.wait(GATHER_SECONDS)
            self._wake.clear()
            batch: list[Answer] = []
            size = 0
            while True:
                if item is self._STOP:
                    stopping = True
                    break
                assert isinstance(item, Answer)
                self._taken += 1
                batch.append(item)
                size += len(item.text)
                if len(batch) >= BATCH_ANSWERS or size >= BATCH_BYTES:
                    self._write_unless_failed(batch)
                    batch, size = [], 0
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write_unless_failed(batch)

    def _write_unless_failed(self, batch: Sequence[Answer]) -> None:
        if batch and self._failure is None:
            self._write(batch)

    def _write(self, batch: Sequence[Answer]) -> None:
        try:
            record = _encode(self._fingerprint, batch)
            mac = self._authority.checkpoint_mac(record)
            line = json.dumps({"record": record.decode("utf-8"), "mac": mac.hex()})
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as error:
            self._failure = self._naming_the_file(error)
        except BaseException as error:  # noqa: BLE001 - handed to the run's thread
            self._failure = error

    def _naming_the_file(self, error: OSError) -> OSError:
        """The error with this checkpoint's path: a write through a handle names no file."""
        return OSError(error.errno, error.strerror, str(self.path))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._wake.set()  # write what is being gathered now
            self._thread.join()
        if not self._file.closed:
            try:
                if self._failure is None:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                self._file.close()
            except OSError as error:
                self._failure = self._failure or self._naming_the_file(error)
        if self._failure is not None:
            raise self._failure


def read_checkpoint(
    path: Path, fingerprint: str, authority: CheckpointAuthority
) -> Iterator[Answer]:
    """Every verified answer in ``path``; refuses tampered records and other settings."""
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                break  # the run was killed while writing this line: it never completed
            try:
                wrapper = json.loads(line)
                record = wrapper["record"].encode("utf-8")
                mac = bytes.fromhex(wrapper["mac"])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise SealError(f"checkpoint {path}:{number}: malformed record") from None
            try:
                authority.checkpoint_verify(record, mac)
            except SealError:
                raise SealError(
                    f"checkpoint {path}:{number}: the record's MAC does not verify; "
                    "the checkpoint was altered, refusing to resume"
                ) from None
            payload: dict[str, Any] = json.loads(record)
            if payload["fingerprint"] != fingerprint:
                raise ConfigurationError(
                    f"checkpoint {path} belongs to different settings or data; resume only "
                    "with the settings the run started with"
                )
            yield from (Answer.from_list(item) for item in payload["answers"])
