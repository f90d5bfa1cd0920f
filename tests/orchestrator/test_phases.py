"""The worker RPC tables' phase and times columns: against real workers, both ends, and the doc."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import pytest

from elspeth.orchestrator import WorkerProtocolError, _wire
from elspeth.orchestrator._errors import WorkerStartError
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.orchestrator._runtime._process import WorkerProcess
from elspeth.security import SecurityLevel
from tests.orchestrator.conftest import MakeFrame, MakeRuntime, runtime_config

pytestmark = pytest.mark.integration
DOC: Final = Path(__file__).parents[2] / "docs" / "worker-rpc.md"
TABLES: Final = {"worker bound": _wire.WORKER_BOUND, "orchestrator bound": _wire.ORCHESTRATOR_BOUND}
SAMPLE_FIELDS: Final[Mapping[str, Mapping[str, Any]]] = {
    "hello": {"protocol": _wire.PROTOCOL_VERSION, "max_message": 2**20, "sandbox": {}},
    "warm": {},
    "describe": {"id": 1, "plugin": "forged_handle", "params": None},
    "run": {"id": 1, "plugin": "forged_handle", "params": {}, "chunk": "c", "handles": ["h"]},
    "proxy_reply": {"seq": 1, "ok": True, "value": {}, "error": None, "size": 0},
    "shutdown": {},
}
"""A well-formed message of each op the orchestrator sends: only its phase can be wrong."""


def _refusal(op: str, phase: _wire.Phase, rule: _wire.Rule) -> str:
    """What the conversation says about ``op`` arriving in ``phase``."""
    if rule.times == _wire.ONCE and phase is not _wire.Phase.START and op == "hello":
        return f"message {op!r} received twice"
    return f"message {op!r} received in phase {phase.value!r}"


# --- the table on its own: every row, every phase it forbids --------------------------------


def _cases() -> Iterator[tuple[str, str, _wire.Phase]]:
    for side, table in TABLES.items():
        for op, rule in table.items():
            for phase in _wire.Phase:
                if phase not in rule.phases:
                    yield side, op, phase


@pytest.mark.parametrize(("side", "op", "phase"), list(_cases()))
def test_every_row_refuses_its_op_in_every_phase_it_does_not_list(
    side: str, op: str, phase: _wire.Phase
) -> None:
    table = TABLES[side]
    conversation = _wire.Conversation(table, table)
    conversation.phase = phase
    with pytest.raises(_wire.OutOfPhaseError, match=rf"'{op}' received in phase '{phase.value}'"):
        conversation.received(op)
    with pytest.raises(_wire.OutOfPhaseError, match=rf"'{op}' sent in phase '{phase.value}'"):
        conversation.sending(op)
    assert conversation.phase is phase


@pytest.mark.parametrize(
    ("side", "op"),
    [(side, op) for side, table in TABLES.items() for op, rule in table.items()],
)
def test_once_rows_refuse_a_second_message_and_many_rows_accept_one(side: str, op: str) -> None:
    rule = TABLES[side][op]
    conversation = _wire.Conversation(TABLES[side], TABLES[side])
    (conversation.phase,) = sorted(rule.phases, key=list(_wire.Phase).index)[:1]
    conversation.received(op)
    assert conversation.phase is rule.then
    conversation.phase = next(iter(rule.phases))
    if rule.times == _wire.ONCE:
        with pytest.raises(_wire.OutOfPhaseError, match=rf"'{op}' received twice"):
            conversation.received(op)
    else:
        conversation.received(op)


# --- the worker: a real worker process, sent messages out of phase ---------------------------


def _forbidden_in(phase: _wire.Phase) -> list[str]:
    return [op for op, rule in _wire.WORKER_BOUND.items() if phase not in rule.phases]


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(runtime_config(tmp_path), SecurityLevel.OFFICIAL)
    yield process
    process.stop(polite=False)


def _send_raw(worker: WorkerProcess, op: str) -> None:
    """Bypass the orchestrator's own check of what it sends, as a broken orchestrator would."""
    deadline = time.monotonic() + 10
    worker._send_all((_wire.encode(op, **SAMPLE_FIELDS[op]),), deadline)


def _stderr_of(worker: WorkerProcess) -> str:
    worker.stop(polite=False)
    return worker.stderr.path.read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("op", _forbidden_in(_wire.Phase.IDLE))
def test_the_worker_refuses_between_calls_an_op_its_row_forbids_there(
    worker: WorkerProcess, op: str
) -> None:
    _send_raw(worker, op)
    answer = worker.receive(time.monotonic() + 10)
    assert answer.op == "error"
    assert answer["kind"] == "unexpected"
    rule = _wire.WORKER_BOUND[op]
    assert _refusal(op, _wire.Phase.IDLE, rule) in answer["message"]
    assert worker.conversation.phase is _wire.Phase.CLOSED


@pytest.mark.parametrize("op", _forbidden_in(_wire.Phase.PROXY))
def test_the_worker_refuses_an_op_while_its_plugin_waits_for_a_proxy_reply(
    worker: WorkerProcess, op: str
) -> None:
    deadline = time.monotonic() + 10
    worker.send(deadline, "run", **SAMPLE_FIELDS["run"])
    assert worker.receive(deadline).op == "proxy"
    _send_raw(worker, op)
    with pytest.raises(_wire.ChannelClosedError):
        worker.receive(deadline)
    rule = _wire.WORKER_BOUND[op]
    assert _refusal(op, _wire.Phase.PROXY, rule) in _stderr_of(worker)


class _FirstMessage(WorkerProcess):
    """A worker whose orchestrator opens with ``first`` instead of ``hello``."""

    first = "describe"
    started: ClassVar[list[WorkerProcess]] = []

    def _handshake(self) -> None:
        type(self).started.append(self)
        _send_raw(self, self.first)
        with pytest.raises(_wire.ChannelClosedError):
            self.receive(time.monotonic() + self.config.startup_timeout)
        raise WorkerStartError("refused, as it should be")


@pytest.mark.parametrize("op", _forbidden_in(_wire.Phase.START))
def test_the_worker_refuses_to_start_unless_hello_comes_first(tmp_path: Path, op: str) -> None:
    _FirstMessage.first = op
    with pytest.raises(WorkerStartError, match="as it should be"):
        _FirstMessage(runtime_config(tmp_path), SecurityLevel.OFFICIAL)
    worker = _FirstMessage.started.pop()
    assert worker.returncode == 3
    stderr = worker.stderr.path.read_text(encoding="utf-8")
    assert f"refusing to start: message {op!r} received in phase 'start'" in stderr


def test_the_worker_refuses_a_second_hello(worker: WorkerProcess) -> None:
    _send_raw(worker, "hello")
    answer = worker.receive(time.monotonic() + 10)
    assert answer["kind"] == "unexpected"
    assert "message 'hello' received twice" in answer["message"]


# --- the orchestrator: a real (hostile) worker sending out of phase ---------------------------


@pytest.fixture
def runtime(make_runtime: MakeRuntime) -> PluginRuntime:
    return make_runtime(call_timeout=10.0)


@pytest.mark.parametrize(
    ("op", "fields", "reason"),
    [
        (
            "ready",
            {"protocol": _wire.PROTOCOL_VERSION, "pid": 1, "sandbox": {}},
            "message 'ready' received twice",
        ),
        (
            "described",
            {"id": 1, "ok": True, "info": None, "error": None},
            "message 'described' received in phase 'run'; it is allowed only in phase describe",
        ),
    ],
)
def test_a_worker_message_out_of_phase_is_a_protocol_error_naming_op_and_phase(
    runtime: PluginRuntime,
    make_frame: MakeFrame,
    op: str,
    fields: dict[str, Any],
    reason: str,
) -> None:
    with pytest.raises(WorkerProtocolError, match=re.escape(reason)) as caught:
        runtime.run(
            "raw_message",
            {"op": op, "fields": fields},
            [make_frame()],
            chunk_id="x",
            plan_level=SecurityLevel.OFFICIAL,
        )
    assert "'raw_message' on chunk 'x'" in str(caught.value)


# --- the doc ---------------------------------------------------------------------------------


def _doc_rows(heading: str) -> dict[str, tuple[frozenset[str], str, str]]:
    lines = DOC.read_text(encoding="utf-8").split(heading, 1)[1].splitlines()
    rows: dict[str, tuple[frozenset[str], str, str]] = {}
    table = [line for line in lines[1:] if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:4] == ["op", "phase", "times", "then"]
    for line in lines[lines.index(table[1]) + 1 :]:
        if not line.startswith("|"):
            break
        op, phases, times, then = (cell.strip() for cell in line.strip("|").split("|")[:4])
        rows[op.strip("`")] = (frozenset(re.findall(r"`([a-z_]+)`", phases)), times, then)
    return rows


@pytest.mark.parametrize(
    ("heading", "side"),
    [("Orchestrator → worker:", "worker bound"), ("Worker → orchestrator:", "orchestrator bound")],
)
def test_the_doc_lists_every_op_with_the_tables_phase_times_and_next_phase(
    heading: str, side: str
) -> None:
    expected = {
        op: (frozenset(p.value for p in rule.phases), rule.times, f"`{rule.then.value}`")
        for op, rule in TABLES[side].items()
    }
    assert _doc_rows(heading) == expected
