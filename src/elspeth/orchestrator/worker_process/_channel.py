"""The worker's end of the channel: blocking reads and writes on raw descriptors.

Import-light (``os`` and :mod:`._wire` only): the worker reads its ``hello`` through this before
it hardens itself. Once the data libraries are loaded, the worker swaps in an allocator that
reads payloads into Arrow memory (``allocate``).
"""

from __future__ import annotations

import os
from typing import Any, Final

from elspeth.orchestrator import _wire

MAX_PAYLOAD_BYTES: Final = 4 * 1024**3
"""The worker trusts its orchestrator's payload sizes up to this bound."""


class WorkerChannel:
    """Framed messages in on ``in_fd``, out on ``out_fd`` (the same socket when spawned)."""

    def __init__(self, in_fd: int, out_fd: int, max_message: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.max_message = max_message
        self.allocate: _wire.Allocate = _wire.allocate_bytearray
        self.conversation = _wire.Conversation.worker_side()

    def receive(self) -> _wire.Message:
        """The next message (and its payload) from the orchestrator; :class:`ChannelClosedError`
        at end of input."""
        return _wire.read_message(
            self._read_into,
            _wire.WORKER_BOUND,
            max_message=self.max_message,
            max_payload=MAX_PAYLOAD_BYTES,
            allocate=self.allocate,
            conversation=self.conversation,
        )

    def send(self, op: str, **fields: Any) -> None:
        self.conversation.sending(op)
        self._write_all(_wire.encode(op, **fields))

    def send_with_payload(self, op: str, payload: _wire.Buffer, **fields: Any) -> None:
        self.conversation.sending(op)
        for frame in _wire.frames_with_payload(op, payload, **fields):
            self._write_all(frame)

    def _read_into(self, view: memoryview) -> None:
        filled, size = 0, view.nbytes
        while filled < size:
            count = os.readv(self.in_fd, [view[filled:]])
            if count == 0:
                raise _wire.ChannelClosedError("the orchestrator closed the channel")
            filled += count

    def _write_all(self, data: _wire.Buffer) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.out_fd, view) :]
