"""The worker's end of the channel: blocking reads and writes on raw descriptors.

Import-light (``os`` and :mod:`._wire` only): the worker reads its ``hello`` through this before
it hardens itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from elspeth.orchestrator import _wire


class WorkerChannel:
    """Framed messages in on ``in_fd``, out on ``out_fd`` (the same socket when spawned)."""

    def __init__(self, in_fd: int, out_fd: int, max_message: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.max_message = max_message

    def receive(self) -> _wire.Message:
        """The next message from the orchestrator; :class:`ChannelClosedError` at end of input."""
        header = self._read_exact(_wire.HEADER.size)
        body = self._read_exact(_wire.body_length(header, self.max_message))
        return _wire.decode(body, _wire.WORKER_BOUND)

    def receive_payload(self, header: _wire.Message, max_payload: int) -> bytes:
        return _wire.collect_payload(header, self.receive, max_payload)

    def send(self, op: str, **fields: Any) -> None:
        self._write_all((_wire.encode(op, **fields),))

    def send_with_payload(self, op: str, payload: bytes, **fields: Any) -> None:
        self._write_all(_wire.encode_with_payload(op, payload, self.max_message, **fields))

    def _read_exact(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        while filled < size:
            count = os.readv(self.in_fd, [view[filled:]])
            if count == 0:
                raise _wire.ChannelClosedError("the orchestrator closed the channel")
            filled += count
        return buffer

    def _write_all(self, messages: Iterable[bytes]) -> None:
        for message in messages:
            view = memoryview(message)
            while view:
                view = view[os.write(self.out_fd, view) :]
