"""The daemon's audit log: one JSON line per request, on disk before the reply is sent.

Lines go to the kernel (``write``) before the daemon sends the replies they describe; ``fsync``
runs at most every ``fsync_interval`` seconds (0: after every write), trading the last interval
of records on power loss for throughput. Records carry ids, levels, digests and outcomes, never
keys, MACs, seals or record content.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_encode_fields: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode

MAX_FIELD_CHARS: Final = 512
"""Longest text value (or byte string, as hex) an audit field keeps; the rest is cut, marked."""
MAX_FIELD_ITEMS: Final = 64
"""Most list items an audit field keeps; a marker item says how many more there were."""


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) <= MAX_FIELD_CHARS:
            return value
        return f"{value[:MAX_FIELD_CHARS]}...[truncated {len(value) - MAX_FIELD_CHARS} chars]"
    if isinstance(value, list | tuple):
        kept = [_bounded(item) for item in value[:MAX_FIELD_ITEMS]]
        if len(value) > MAX_FIELD_ITEMS:
            kept.append(f"...[truncated {len(value) - MAX_FIELD_ITEMS} items]")
        return kept
    if isinstance(value, dict):
        return {_bounded(str(k)): _bounded(v) for k, v in list(value.items())[:MAX_FIELD_ITEMS]}
    if isinstance(value, bytes | bytearray):
        return _bounded(bytes(value).hex())
    return value


def bounded_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with every text value and list cut to the audit bounds (a copy only if needed)."""
    for value in fields.values():
        if isinstance(value, list | tuple | dict | bytes | bytearray) or (
            isinstance(value, str) and len(value) > MAX_FIELD_CHARS
        ):
            return {str(key)[:MAX_FIELD_CHARS]: _bounded(v) for key, v in fields.items()}
    return fields


@functools.lru_cache(maxsize=64)
def _json_text(value: str | None) -> str:
    """JSON of an op name or status: a small fixed set, so each is encoded once."""
    return json.dumps(value)


def connection_json(connection_id: int, uid: int, pid: int) -> str:
    """The fields every record of one connection shares, rendered once per connection."""
    return f'"conn":{connection_id},"uid":{uid},"pid":{pid}'


@dataclass(slots=True)
class AuditRecord:
    """One request's audit record; ``op`` is a known operation name, ``"(unknown)"`` or None.

    The line is the JSON object ``{ts, audit_id, conn, uid, pid, op, seq, status, **fields}``;
    the fixed leading fields are formatted directly (a float's JSON is its ``repr``) and only
    ``fields`` goes through the JSON encoder.
    """

    ts: float
    audit_id: int
    connection: str
    op: str | None
    seq: int
    status: str
    fields: dict[str, Any]

    def line(self) -> str:
        head = (
            f'{{"ts":{self.ts!r},"audit_id":{self.audit_id},{self.connection},'
            f'"op":{_json_text(self.op)},"seq":{self.seq},"status":{_json_text(self.status)}'
        )
        if not self.fields:
            return head + "}\n"
        return f"{head},{_encode_fields(bounded_fields(self.fields))[1:]}\n"


class AuditLog:
    """Append-only JSON-lines file, private to the daemon's user (0600)."""

    def __init__(self, path: Path, *, fsync_interval: float) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fd = os.open(path, flags, 0o600)
        self.path = path
        self._fsync_interval = fsync_interval
        self._last_fsync = time.monotonic()
        self._dirty = False

    def write(self, records: Iterable[AuditRecord]) -> None:
        """Append ``records`` in one write; fsync if the interval has passed."""
        data = "".join([record.line() for record in records]).encode("ascii")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._dirty = True
        if time.monotonic() - self._last_fsync >= self._fsync_interval:
            self.sync()

    def write_event(self, event: str, fields: dict[str, Any]) -> None:
        """Append one line about the daemon itself (not a request): ``{ts, event, **fields}``."""
        line = _encode_fields({"ts": time.time(), "event": event, **bounded_fields(fields)})
        data = (line + "\n").encode("ascii")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_fsync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
