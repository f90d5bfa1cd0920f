"""Every event a run's audit log may hold: the closed set, one frozen dataclass each.

A line is ``{"ts", "run", "event", "prev", <the event's fields>}``; ``event`` is the class's
:attr:`AuditEvent.NAME`. Fields are ordinals, names from the settings, levels, counts, costs
and the daemon's audit ids: never row content, natural keys, prompts, answers or secrets. That
is why no field takes free text from data; the few free-text fields (``reason``,
``stop_reason``, ``error_message``) are built by Elspeth from fixed parts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Final


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """The base of every event; only its subclasses in :data:`EVENT_TYPES` are ever recorded."""

    NAME: ClassVar[str] = ""

    def fields(self) -> dict[str, Any]:
        """The event's fields as JSON-ready values, in declaration order (tuples become lists
        when dumped): what ``dataclasses.asdict`` gives, without its deep copy. Every value is
        immutable (text, numbers, booleans, null, tuples of them); an event holding records
        (:class:`LlmResult`) turns them into mappings itself. Recorded once per answer, so this
        stays cheap."""
        return {name: getattr(self, name) for name in _field_names(type(self))}


_FIELD_NAMES: Final[dict[type, tuple[str, ...]]] = {}


def _field_names(event_type: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(event_type)
    if names is None:
        names = _FIELD_NAMES[event_type] = tuple(f.name for f in dataclasses.fields(event_type))
    return names


@dataclass(frozen=True, slots=True)
class RunStarted(AuditEvent):
    """``experiments`` in the settings' order; ``baseline`` is one of them (what a reader of the
    run's outputs, such as ``elspeth view``, pairs the others against)."""

    NAME: ClassVar[str] = "run_started"
    suite: str
    resumed: bool
    experiments: tuple[str, ...]
    baseline: str


@dataclass(frozen=True, slots=True)
class AuthorityReady(AuditEvent):
    NAME: ClassVar[str] = "authority_ready"
    boot_id: str
    mode: str


@dataclass(frozen=True, slots=True)
class ClearanceDecision(AuditEvent):
    """One component's verdict in the clearance plan, levels by name."""

    NAME: ClassVar[str] = "clearance_decision"
    component: str
    kind: str
    clearance: str
    incoming: str
    outgoing: str
    allowed: bool


@dataclass(frozen=True, slots=True)
class Refusal(AuditEvent):
    """The run was refused before any data was read; ``count`` is the number of violations."""

    NAME: ClassVar[str] = "refusal"
    reason: str
    count: int | None = None


@dataclass(frozen=True, slots=True)
class FrameGranted(AuditEvent):
    """An origin frame (one chunk of the datasource) minted by the daemon."""

    NAME: ClassVar[str] = "frame_granted"
    chunk: int
    rows: int
    level: str
    audit_id: int


@dataclass(frozen=True, slots=True)
class Resumed(AuditEvent):
    NAME: ClassVar[str] = "resumed"
    experiment: str
    answers: int


@dataclass(frozen=True, slots=True)
class SealVerified(AuditEvent):
    """A chunk's seal and level checked before its rows go to ``component``."""

    NAME: ClassVar[str] = "seal_verified"
    experiment: str
    chunk: int
    component: str
    audit_id: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request of an :class:`LlmResult`: no request or response content."""

    number: int
    outcome: str
    status: int | None
    latency_ms: float
    retry_delay_ms: float | None

    def fields(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "retry_delay_ms": self.retry_delay_ms,
        }


@dataclass(frozen=True, slots=True)
class LlmResult(AuditEvent):
    """The stage's answer for one (row ordinal, criterion, repeat), without its text."""

    NAME: ClassVar[str] = "llm_result"
    experiment: str
    row: int
    criterion: str
    repeat: int
    outcome: str
    error_kind: str | None
    error_message: str | None
    attempt_count: int
    retry_reasons: tuple[str, ...]
    attempts: tuple[Attempt, ...]
    prompt_tokens: int
    completion_tokens: int
    cost: str | None
    cached: bool
    latency_ms: float

    def fields(self) -> dict[str, Any]:
        fields = AuditEvent.fields(self)
        fields["attempts"] = tuple(attempt.fields() for attempt in self.attempts)
        return fields


@dataclass(frozen=True, slots=True)
class JudgeResult(LlmResult):
    """A judge's call for one (row, repeat): the call's record as for an answer (``criterion``
    is the judge), and whether its reply gave a grade that passed, failed or none (``error``,
    with the reason built from the judge's settings, never from the reply)."""

    NAME: ClassVar[str] = "judge_result"
    judge: str
    grade: str
    grade_error: str | None


@dataclass(frozen=True, slots=True)
class JudgeDone(AuditEvent):
    """A judge's totals over one experiment, apart from the generation stage's."""

    NAME: ClassVar[str] = "judge_done"
    experiment: str
    judge: str
    rows: int
    calls: int
    cached: int
    retries: int
    passed: int
    failed: int
    malformed: int
    call_errors: int
    unanswered: int
    ungraded: int
    prompt_tokens: int
    completion_tokens: int
    cost: str | None
    stop_reason: str | None
    partial: bool


@dataclass(frozen=True, slots=True)
class PluginStep(AuditEvent):
    NAME: ClassVar[str] = "plugin_step"
    experiment: str
    chunk: int
    plugin: str
    skipped: bool


@dataclass(frozen=True, slots=True)
class EarlyStop(AuditEvent):
    """A row plugin of kind ``early_stop`` marked rows of a chunk: no new row is asked about.
    ``rows_marked`` of the chunk frame's ``rows`` asked for the stop."""

    NAME: ClassVar[str] = "early_stop"
    experiment: str
    chunk: int
    plugin: str
    rows: int
    rows_marked: int


@dataclass(frozen=True, slots=True)
class BudgetStop(AuditEvent):
    """A budget stopped the model stage. ``limit`` is ``cost`` or ``rows``; ``spent`` and
    ``rows`` are what had been used against that budget when it decided (earlier experiments
    and a resumed checkpoint included); ``partial`` is whether work was left undone."""

    NAME: ClassVar[str] = "budget_stop"
    experiment: str
    scope: str
    limit: str
    max_cost: str | None
    max_rows: int | None
    spent: str
    rows: int
    partial: bool


@dataclass(frozen=True, slots=True)
class LlmStageDone(AuditEvent):
    """An experiment's model stage ended: its totals (``cost`` null when it is unknown)."""

    NAME: ClassVar[str] = "llm_stage_done"
    experiment: str
    results: int
    ok: int
    errors: int
    cached: int
    skipped: int
    rows_started: int
    attempts: int
    retries: int
    prompt_tokens: int
    completion_tokens: int
    cost: str | None
    cache_misreads: int
    partial: bool
    stop_reason: str | None
    stopped_by: str | None
    abandoned: int
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class WorkerViewVerified(AuditEvent):
    """A worker asked for a view of a frame: its clearance and seal were checked by the daemon
    (``audit_id``) before the data was sent. ``chunk_id`` names the plugin call."""

    NAME: ClassVar[str] = "worker_view_verified"
    plugin: str
    chunk_id: str
    worker: str
    frame_id: str
    level: str
    audit_id: int


@dataclass(frozen=True, slots=True)
class FrameDerived(AuditEvent):
    """A plugin's output frame, registered with the daemon (``audit_id``) as derived from
    ``parents`` (frame ids) at ``level``; ``method`` is the proxy call that made it."""

    NAME: ClassVar[str] = "frame_derived"
    plugin: str
    chunk_id: str
    method: str
    frame_id: str
    parents: tuple[str, ...]
    level: str
    audit_id: int


@dataclass(frozen=True, slots=True)
class ProxyRefused(AuditEvent):
    """A plugin's proxy call was refused. ``method`` is the method's name when it is one of the
    proxy methods (else ``unknown``) and ``error`` the refusal's type: the message, which can
    quote what the plugin sent, stays in the operational log."""

    NAME: ClassVar[str] = "proxy_refused"
    plugin: str
    chunk_id: str
    worker: str
    method: str
    error: str


@dataclass(frozen=True, slots=True)
class OutputWritten(AuditEvent):
    """A file written through a sink step; ``seal_audit_ids`` are the daemon's checks of the
    frames it holds."""

    NAME: ClassVar[str] = "output_written"
    component: str
    sink: str
    output: str
    format: str
    level: str
    rows: int
    seal_audit_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RunFinished(AuditEvent):
    """The run's one status (the same as the manifest's); always the log's last event."""

    NAME: ClassVar[str] = "run_finished"
    status: str
    exit_code: int
    reason: str | None
    early_stopped: bool


EVENT_TYPES: Final[tuple[type[AuditEvent], ...]] = (
    RunStarted,
    AuthorityReady,
    ClearanceDecision,
    Refusal,
    FrameGranted,
    Resumed,
    SealVerified,
    LlmResult,
    PluginStep,
    EarlyStop,
    BudgetStop,
    LlmStageDone,
    JudgeResult,
    JudgeDone,
    WorkerViewVerified,
    FrameDerived,
    ProxyRefused,
    OutputWritten,
    RunFinished,
)
"""The closed set: a line's ``event`` is the ``NAME`` of exactly one of these."""
