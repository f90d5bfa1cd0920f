"""The operation table's phase and times columns, against the real daemon and the spec."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import pytest

from elspeth.sidecar import StandaloneDaemon
from elspeth.sidecar import _schema as s
from elspeth.sidecar._daemon._engine import Refusal, SealEngine
from elspeth.sidecar._daemon._policy import OPERATIONS, Operation, Phase, Times, admit
from elspeth.sidecar._protocol import ErrorCode, MacKey, encode_request, frame
from tests.sidecar.conftest import RawConnection

SPEC = Path(__file__).parents[2] / "docs" / "sidecar-protocol.md"
ADMISSION_CODES = {"out_of_phase", "once_only", "unknown_op"}


def _admission_code(raw: RawConnection, op: str) -> str | None:
    """The code of an admission refusal, or ``None`` when the table let ``op`` through (it may
    then be refused for its empty arguments: admission comes first)."""
    reply = raw.call(op, {})
    code = reply.body.get("code") if reply.status == "error" else None
    return code if code in ADMISSION_CODES else None


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_each_operation_is_admitted_exactly_in_the_phases_its_row_lists(
    daemon: StandaloneDaemon, session_key: bytes, op: str
) -> None:
    row = OPERATIONS[op]
    raw = RawConnection(daemon.socket_path, session_key)
    try:
        # First request on a connection: the greeted phase; every later one: authenticated.
        first = _admission_code(raw, op)
        assert first == (None if Phase.GREETED in row.phases else "out_of_phase")
        second = _admission_code(raw, op)
        if row.times is Times.ONCE:
            assert second == "once_only"
        else:
            assert second == (None if Phase.AUTHENTICATED in row.phases else "out_of_phase")
    finally:
        raw.close()


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_no_operation_can_be_asked_before_the_greeting(
    daemon: StandaloneDaemon, session_key: bytes, op: str
) -> None:
    raw = RawConnection(daemon.socket_path, session_key)
    try:
        # Made without the greeting's nonce, as a client that has not read it must.
        raw.send(frame(encode_request(MacKey(session_key), bytes(32), 1, op, {})))
        reply = raw.reply()
        assert reply.body == {"code": "bad_mac", "message": "request MAC does not verify"}
        assert raw.closed_by_peer()
    finally:
        raw.close()


def _row(phases: set[Phase], times: Times) -> Operation:
    return Operation(s.fields(), SealEngine.health, "test row", frozenset(phases), times)


RESTRICTED = MappingProxyType(
    {
        "later_only": _row({Phase.AUTHENTICATED}, Times.MANY),
        "first_only": _row({Phase.GREETED}, Times.ONCE),
    }
)


def test_admit_refuses_an_operation_out_of_its_phase_naming_both() -> None:
    with pytest.raises(Refusal) as caught:
        admit("later_only", Phase.GREETED, set(), RESTRICTED)
    assert caught.value.code is ErrorCode.OUT_OF_PHASE
    assert caught.value.message == (
        "later_only is not allowed in phase greeted; only in phase authenticated"
    )
    assert caught.value.details == {"phase": "greeted"}
    assert admit("later_only", Phase.AUTHENTICATED, set(), RESTRICTED) is RESTRICTED["later_only"]


def test_admit_refuses_a_once_only_operation_asked_twice() -> None:
    assert admit("first_only", Phase.GREETED, set(), RESTRICTED) is RESTRICTED["first_only"]
    with pytest.raises(Refusal) as caught:
        admit("first_only", Phase.GREETED, {"first_only"}, RESTRICTED)
    assert caught.value.code is ErrorCode.ONCE_ONLY


def test_admit_refuses_unknown_operations() -> None:
    with pytest.raises(Refusal) as caught:
        admit("lower_level", Phase.AUTHENTICATED, set())
    assert caught.value.code is ErrorCode.UNKNOWN_OP


def _spec_rows() -> dict[str, tuple[frozenset[str], str]]:
    """The spec's operation table: op -> (phases, times)."""
    rows: dict[str, tuple[frozenset[str], str]] = {}
    lines = iter(SPEC.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if line.startswith("| op | phase | times |"):
            break
    next(lines)  # the |---| line
    for line in lines:
        if not line.startswith("|"):
            break
        op, phases, times = (cell.strip() for cell in line.strip("|").split("|")[:3])
        rows[op.strip("`")] = (frozenset(re.findall(r"`([a-z_]+)`", phases)), times)
    return rows


def test_the_spec_lists_every_operation_with_the_tables_phase_and_times() -> None:
    table = {
        op: (frozenset(phase.value for phase in row.phases), row.times.value)
        for op, row in OPERATIONS.items()
    }
    assert _spec_rows() == table
