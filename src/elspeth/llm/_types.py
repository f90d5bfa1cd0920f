"""The values the LLM stage passes around: requests, completions, attempts and row results."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from elspeth.audit import Attempt, LlmResult
from elspeth.llm._pricing import BudgetDecision


class Outcome(enum.Enum):
    """What happened to one (row, criterion, repeat).

    ``OK`` means the endpoint answered with a well-formed completion; whether the answer is any good
    is for the validation plugins (which record FAIL). ``ERROR`` means no usable answer arrived.
    """

    OK = "ok"
    ERROR = "error"


class ErrorKind(enum.Enum):
    """Why an attempt or a row ended in ``ERROR``."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    MALFORMED_RESPONSE = "malformed_response"
    PROMPT_RENDER = "prompt_render"


#: The only failures worth another attempt: the same request may succeed later.
RETRYABLE: Final[frozenset[ErrorKind]] = frozenset(
    {ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR}
)

#: HTTP statuses whose kind is not decided by their class (4xx -> client error, 5xx -> server).
_STATUS_KINDS: Final[Mapping[int, ErrorKind]] = {
    408: ErrorKind.TIMEOUT,
    429: ErrorKind.RATE_LIMITED,
}


def kind_for_status(status: int) -> ErrorKind:
    """Classify a non-2xx HTTP status."""
    if status in _STATUS_KINDS:
        return _STATUS_KINDS[status]
    return ErrorKind.SERVER_ERROR if status >= 500 else ErrorKind.CLIENT_ERROR


Message = Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion to ask for: rendered messages and the repeat index."""

    messages: tuple[Message, ...]
    repeat: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Completion:
    """A well-formed answer. ``usage_estimated`` when the endpoint reported no token usage."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None
    usage_estimated: bool = False
    status: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointIdentity:
    """What makes two answers comparable: where they came from and how they were asked for.

    It feeds the cache key, so it never holds the API key.
    """

    provider: str
    endpoint: str
    model: str
    parameters: Mapping[str, Any]
    deployment: str | None = None

    def cache_material(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "endpoint": self.endpoint,
            "deployment": self.deployment,
            "model": self.model,
            "parameters": dict(self.parameters),
        }


class AttemptFailure(Exception):
    """One attempt did not produce a completion. Raised by clients, consumed by the stage.

    ``detail`` is built by the client from safe parts (status, error code, exception type) and is
    already free of the key; it is never shown as a traceback to users.
    """

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt, for the audit log: no request or response content."""

    number: int
    outcome: str
    status: int | None
    latency_s: float
    retry_delay_s: float | None = None

    def audit_event(self) -> Attempt:
        """This attempt as the audit event records it: times in milliseconds, to the µs."""
        return Attempt(
            self.number,
            self.outcome,
            self.status,
            round(self.latency_s * 1000, 3),
            None if self.retry_delay_s is None else round(self.retry_delay_s * 1000, 3),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RowResult:
    """The stage's answer for one (row ordinal, criterion, repeat).

    ``cost`` is what this run paid: zero for a cached answer, whose token counts are those of the
    original call.
    """

    row: int
    criterion: str
    repeat: int
    outcome: Outcome
    text: str | None
    error_kind: ErrorKind | None
    error_message: str | None
    attempts: tuple[AttemptRecord, ...]
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    cached: bool
    latency_s: float

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.row, self.criterion, self.repeat)

    @property
    def retry_reasons(self) -> tuple[str, ...]:
        return tuple(attempt.outcome for attempt in self.attempts[:-1])

    def audit_event(self, experiment: str, *, priced: bool = True) -> LlmResult:
        """Everything about this result except the answer text (row content never goes to
        audit), as the audit log's event; unpriced, the cost is unknown (null). Built directly,
        once per answer."""
        return LlmResult(
            experiment=experiment,
            row=self.row,
            criterion=self.criterion,
            repeat=self.repeat,
            outcome=self.outcome.value,
            error_kind=None if self.error_kind is None else self.error_kind.value,
            error_message=self.error_message,
            attempt_count=len(self.attempts),
            retry_reasons=self.retry_reasons,
            attempts=tuple(attempt.audit_event() for attempt in self.attempts),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=str(self.cost) if priced else None,
            cached=self.cached,
            latency_ms=round(self.latency_s * 1000, 3),
        )


@dataclasses.dataclass(slots=True)
class StageSummary:
    """Totals for one :meth:`LLMStage.run`. ``partial`` is true when a budget stopped the run
    with work left undone; ``stop_reason`` says which limit and ``stopped_by`` names what stopped
    the run with work left (a budget's scope, ``"budget"``, or ``"early stop"`` for a requested
    stop, which is never partial). ``abandoned`` counts items given up after a stop with
    attempts already made (a retry that was not sent); their attempts are in ``attempts``."""

    results: int = 0
    ok: int = 0
    errors: int = 0
    cached: int = 0
    skipped: int = 0
    rows_started: int = 0
    attempts: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    cache_misreads: int = 0
    partial: bool = False
    stop_reason: str | None = None
    stopped_by: str | None = None
    abandoned: int = 0
    elapsed_s: float = 0.0
    budget_stop: BudgetDecision | None = None
    """The budget whose limit was reached first, and its numbers; the stage's first stop."""
    collected: list[RowResult] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (costs as decimal strings), without the collected results."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.pop("collected")
        fields.pop("budget_stop")  # its own audit event
        fields["cost"] = str(self.cost)
        fields["elapsed_s"] = round(self.elapsed_s, 3)
        return fields
