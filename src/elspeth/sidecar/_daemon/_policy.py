"""The daemon's security policy as one table: operation -> phases -> times -> schema -> handler.

Like a privilege-separation monitor table, each row says in which phase of a connection the
operation may be asked and whether once or many times per connection; :func:`admit` is the only
place that order is checked. A request is dispatched only through :data:`OPERATIONS`; its
arguments are validated by the operation's schema before the handler sees them. Adding an
operation means adding a row here (and to ``docs/sidecar-protocol.md``, which a test compares
with this table). There is deliberately no operation that lowers a level.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from elspeth.sidecar import _schema as s
from elspeth.sidecar._daemon._engine import HandlerResult, Refusal, SealEngine
from elspeth.sidecar._protocol import ErrorCode


class Phase(enum.Enum):
    """Where a connection stands. Before its greeting nothing can be asked at all: every request
    MAC covers the greeting's nonce, so a request made without it fails the MAC check."""

    GREETED = "greeted"
    """The greeting was sent; no request has passed the MAC and sequence checks yet."""
    AUTHENTICATED = "authenticated"
    """At least one request has passed them (such a connection is never shed)."""


class Times(enum.Enum):
    ONCE = "once"
    MANY = "many"


ANY_PHASE: Final = frozenset(Phase)
"""Today no operation depends on an earlier one in the same connection: a client reconnects after
an idle timeout and carries on with whatever it was doing (the boot id, not the connection, ties
its frames together)."""


@dataclass(frozen=True, slots=True)
class Operation:
    arguments: s.Validator
    handler: Callable[[SealEngine, Mapping[str, object]], HandlerResult]
    summary: str
    phases: frozenset[Phase] = ANY_PHASE
    times: Times = Times.MANY


_DERIVE_ITEM: Final = s.fields(
    parent_ids=s.list_of(s.frame_id), digest=s.digest, floor=s.optional(s.level_rank)
)

OPERATIONS: Final[Mapping[str, Operation]] = MappingProxyType(
    {
        "authorize_construct": Operation(
            s.fields(level=s.level_rank, digest=s.digest),
            SealEngine.authorize_construct,
            "one-shot grant to mint an origin frame of this level and digest",
        ),
        "redeem_grant": Operation(
            s.fields(grant_id=s.grant_id),
            SealEngine.redeem_grant,
            "redeem a live grant once for a new frame id and seal",
        ),
        "derive": Operation(
            _DERIVE_ITEM,
            SealEngine.derive,
            "register derived content at join(parent levels, floor)",
        ),
        "derive_batch": Operation(
            s.fields(items=s.list_of(_DERIVE_ITEM)),
            SealEngine.derive_batch,
            "several derivations, all or nothing",
        ),
        "verify_seal": Operation(
            s.certificate,
            SealEngine.verify_seal,
            "check id, level, digest and seal against the live registration",
        ),
        "verify_batch": Operation(
            s.fields(items=s.list_of(s.certificate)),
            SealEngine.verify_batch,
            "several verifications; refused if any fails",
        ),
        "retire": Operation(
            s.fields(frame_ids=s.list_of(s.frame_id)),
            SealEngine.retire,
            "forget frames; they never verify again",
        ),
        "checkpoint_mac": Operation(
            s.fields(record=s.record),
            SealEngine.checkpoint_mac,
            "MAC a checkpoint record under the persistent checkpoint key",
        ),
        "checkpoint_verify": Operation(
            s.fields(record=s.record, mac=s.mac),
            SealEngine.checkpoint_verify,
            "verify a checkpoint record's MAC",
        ),
        "health": Operation(
            s.fields(),
            SealEngine.health,
            "status, uptime and counters (also the heartbeat)",
        ),
    }
)


def admit(
    op: str,
    phase: Phase,
    asked_once: Set[str],
    operations: Mapping[str, Operation] = OPERATIONS,
) -> Operation:
    """The operation ``op`` names, if the table allows it now; else the :class:`Refusal`.

    ``asked_once`` holds the once-only operations this connection has already been answered;
    the caller adds ``op`` to it when the returned operation is once-only.
    """
    operation = operations.get(op)
    if operation is None:
        raise Refusal(
            ErrorCode.UNKNOWN_OP,
            f"unknown operation {op!r}; known: {', '.join(sorted(operations))}",
        )
    if operation.times is Times.ONCE and op in asked_once:
        raise Refusal(
            ErrorCode.ONCE_ONLY, f"{op} may be asked once per connection; it was asked again"
        )
    if phase not in operation.phases:
        allowed = ", ".join(sorted(p.value for p in operation.phases))
        raise Refusal(
            ErrorCode.OUT_OF_PHASE,
            f"{op} is not allowed in phase {phase.value}; only in phase {allowed}",
            phase=phase.value,
        )
    return operation
