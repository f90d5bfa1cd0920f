"""The daemon's security policy as one table: operation -> argument schema -> handler.

A request is dispatched only through :data:`OPERATIONS`; its arguments are validated by the
operation's schema before the handler sees them. Adding an operation means adding a row here
(and to ``docs/sidecar-protocol.md``). There is deliberately no operation that lowers a level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from elspeth.sidecar import _schema as s
from elspeth.sidecar._engine import HandlerResult, SealEngine


@dataclass(frozen=True, slots=True)
class Operation:
    arguments: s.Validator
    handler: Callable[[SealEngine, Mapping[str, object]], HandlerResult]
    summary: str


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
