"""Checkpoints: finished LLM answers, MAC'd by the daemon's persistent checkpoint key, so an
interrupted run (even ``kill -9``) resumes without calling the model again for finished rows.

A record holds row content (the answer text), so the file is private (0600) and lives in the
run directory beside the outputs. On resume every record is verified by the (possibly
restarted) daemon; one record that does not verify stops the run as a security refusal.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

from elspeth.errors import ConfigurationError
from elspeth.security import SealError


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


def _encode(fingerprint: str, answer: Answer) -> bytes:
    payload = {
        "fingerprint": fingerprint,
        "row": answer.row,
        "criterion": answer.criterion,
        "repeat": answer.repeat,
        "text": answer.text,
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "cost": str(answer.cost),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


class CheckpointWriter:
    """Appends MAC'd answers for one experiment from a background thread.

    The LLM stage hands answers over from its event loop; the daemon round trip for each MAC
    happens here instead, so it never stalls the requests in flight. Each line is flushed as it
    is written; a failure of the daemon is raised at the next :meth:`append` or at
    :meth:`close` (fail closed).
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
        self._thread = threading.Thread(target=self._drain, name="checkpoint", daemon=True)
        self._thread.start()

    def append(self, answer: Answer) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.put(answer)

    def _drain(self) -> None:
        while (item := self._queue.get()) is not self._STOP:
            if self._failure is not None:
                continue
            assert isinstance(item, Answer)
            try:
                record = _encode(self._fingerprint, item)
                mac = self._authority.checkpoint_mac(record)
                line = json.dumps({"record": record.decode("utf-8"), "mac": mac.hex()})
                self._file.write(line + "\n")
                self._file.flush()
            except BaseException as error:  # noqa: BLE001 - handed to the run's thread
                self._failure = error

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
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
            yield Answer(
                row=int(payload["row"]),
                criterion=str(payload["criterion"]),
                repeat=int(payload["repeat"]),
                text=str(payload["text"]),
                prompt_tokens=int(payload["prompt_tokens"]),
                completion_tokens=int(payload["completion_tokens"]),
                cost=Decimal(payload["cost"]),
            )
