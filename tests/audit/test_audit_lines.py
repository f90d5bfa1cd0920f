"""Each event type serialises its own fields (no ``dataclasses.asdict`` deep copy, recorded once
per answer); the lines stay exactly what dumping the envelope and ``asdict`` gives, and chained."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from elspeth.audit import EVENT_TYPES, Attempt, AuditEvent, chain_start, check_chain
from elspeth.suite._audit import AuditLog

ATTEMPTS = (Attempt(1, "timeout", None, 30000.5, 0.00012), Attempt(2, "ok", 200, 51.235, None))
"""A float JSON writes with an exponent (1.2e-04), a null and a whole number among them."""


def sample_value(hint: Any) -> Any:
    """A value of type ``hint`` that exercises the encoding: escapes, non-ASCII, exponents."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return sample_value(next(arg for arg in typing.get_args(hint) if arg is not type(None)))
    if typing.get_origin(hint) is tuple:
        (element, _) = typing.get_args(hint)
        return ATTEMPTS if element is Attempt else (sample_value(element), sample_value(element))
    return {
        bool: True,
        int: 123456789012,
        float: 1e-05,
        str: 'naïve "quoted" \\ line\nend \u2028',
    }[hint]


def sample(event_type: type[AuditEvent]) -> AuditEvent:
    hints = typing.get_type_hints(event_type)
    values = {f.name: sample_value(hints[f.name]) for f in dataclasses.fields(event_type)}
    return event_type(**values)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.NAME)
def test_fields_are_what_asdict_gives(event_type: type[AuditEvent]) -> None:
    event = sample(event_type)
    assert event.fields() == dataclasses.asdict(event)
    assert list(event.fields()) == [f.name for f in dataclasses.fields(event_type)]


def test_every_line_is_the_envelope_and_asdict_dumped_and_chained(tmp_path: Path) -> None:
    run_id = "20261203T101500Z-3fa2c1é"  # not a real run id: the escaping of the envelope
    log = AuditLog(tmp_path / "audit.jsonl", run_id)
    events = [sample(event_type) for event_type in EVENT_TYPES]
    for event in events:
        log.record(event)
    log.close()
    data = (tmp_path / "audit.jsonl").read_bytes()
    lines = data.splitlines()
    assert len(lines) == len(events)
    prev = chain_start(run_id)
    for line, event in zip(lines, events, strict=True):
        ts = json.loads(line)["ts"]
        expected = {"ts": ts, "run": run_id, "event": event.NAME, "prev": prev}
        expected.update(dataclasses.asdict(event))
        assert line == json.dumps(expected, separators=(",", ":")).encode("ascii")
        prev = hashlib.sha256(line).hexdigest()
    check = check_chain(data, run_id)
    assert check.problems == ()
    assert log.head == check.head
    assert log.head.last_hash == prev
