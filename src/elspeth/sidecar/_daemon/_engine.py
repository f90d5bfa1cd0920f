"""The daemon's authority state: keys, live frames, grants, counters; no I/O.

One :class:`SealEngine` per daemon process. Its handler methods take arguments the policy table
has already validated and return ``(result, audit_fields)``, or raise :class:`Refusal`. They are
synchronous and never block, so the server can run them directly on its event loop.
"""

from __future__ import annotations

import collections
import hmac
import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from elspeth.security._levels import SecurityLevel, may_read
from elspeth.sidecar._protocol import (
    BOOT_ID_SIZE,
    GRANT_RANDOM_SIZE,
    GRANT_TAG_SIZE,
    KEY_SIZE,
    PROTOCOL_VERSION,
    STANDALONE_CEILING,
    ErrorCode,
    MacKey,
    checkpoint_mac_input,
    frame_id_prefix,
    grant_mac_input,
    seal_mac_input,
)

HandlerResult = tuple[dict[str, Any], dict[str, Any]]


def _name(rank: int) -> str:
    """A rank's level name, for messages. Inside the daemon a level is its rank: the lattice is a
    total order, so the join of levels is the maximum of their ranks."""
    return SecurityLevel.from_rank(rank).name


class Refusal(Exception):
    """The daemon says no; ``code`` goes on the wire, ``details`` into the error body."""

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclass(slots=True)
class _Grant:
    rank: int
    digest: bytes
    expires_at: float


class Counters:
    """What ``health`` reports; every refusal is counted by code."""

    __slots__ = (
        "bad_macs",
        "connections_open",
        "connections_total",
        "dropped_connections",
        "frames_issued",
        "frames_retired",
        "grants_expired",
        "grants_issued",
        "refusals",
        "refused_peers",
        "requests",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.refusals: collections.Counter[str] = collections.Counter()
        self.bad_macs = 0
        self.refused_peers = 0
        self.connections_total = 0
        self.connections_open = 0
        self.dropped_connections: collections.Counter[str] = collections.Counter()
        self.frames_issued = 0
        self.frames_retired = 0
        self.grants_issued = 0
        self.grants_expired = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "refusals": dict(self.refusals),
            "bad_macs": self.bad_macs,
            "refused_peers": self.refused_peers,
            "connections_total": self.connections_total,
            "connections_open": self.connections_open,
            "dropped_connections": dict(self.dropped_connections),
            "frames_issued": self.frames_issued,
            "frames_retired": self.frames_retired,
            "grants_issued": self.grants_issued,
            "grants_expired": self.grants_expired,
        }


class SealEngine:
    """Issues grants, frame ids and seals; checks seals and checkpoint MACs.

    The seal key and construction token are generated here and exist only in this process's
    memory; the checkpoint key is loaded by the caller from its file. All three are kept in
    bytearrays (:attr:`secret_buffers`) that the daemon locks into memory and zeroes at exit.
    """

    def __init__(
        self,
        *,
        checkpoint_key: bytearray,
        mode: str,
        grant_ttl_seconds: float,
        max_grants: int,
        max_live_frames: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.boot_id: Final = secrets.token_bytes(BOOT_ID_SIZE)
        self.mode: Final = mode
        self.ceiling: Final = STANDALONE_CEILING if mode == "standalone" else SecurityLevel.SECRET
        self._ranks_within_ceiling = frozenset(
            level.rank for level in SecurityLevel if may_read(self.ceiling, level)
        )
        """Decided once by the read-up rule, so the per-item check is a set lookup."""
        self._seal_key = bytearray(secrets.token_bytes(KEY_SIZE))
        self._construction_token = bytearray(secrets.token_bytes(KEY_SIZE))
        self._checkpoint_key = checkpoint_key
        self._seal_mac = MacKey(self._seal_key)
        self._grant_mac = MacKey(self._construction_token)
        self._checkpoint_mac = MacKey(checkpoint_key)
        self._grant_ttl = grant_ttl_seconds
        self._max_grants = max_grants
        self._max_live_frames = max_live_frames
        self._clock = clock
        self._wall_clock = wall_clock
        self._started = clock()
        self._frame_counter = itertools.count(1)
        self._frame_id_prefix = frame_id_prefix(self.boot_id)
        self._audit_counter = itertools.count(1)
        self._frames: dict[str, tuple[int, bytes]] = {}
        """Live frames: id -> (level rank, digest)."""
        self._ranks_by_digest: dict[bytes, collections.Counter[int]] = {}
        """Live frames' level ranks per digest, counted so that retiring one copy keeps the rest."""
        self._grants: dict[bytes, _Grant] = {}
        self.counters = Counters()

    @property
    def secret_buffers(self) -> tuple[bytearray, ...]:
        """The key buffers, for locking into memory and zeroing at exit."""
        return (self._seal_key, self._construction_token, self._checkpoint_key)

    def next_audit_id(self) -> int:
        return next(self._audit_counter)

    @property
    def live_frames(self) -> int:
        return len(self._frames)

    # --- shared rules --------------------------------------------------------------------

    def _check_ceiling(self, rank: int) -> None:
        if rank not in self._ranks_within_ceiling:
            raise Refusal(
                ErrorCode.LEVEL_REFUSED,
                f"a {self.mode} daemon refuses levels above {self.ceiling}; {_name(rank)} "
                "needs the privilege-separated sidecar deployment",
            )

    def _seal(self, frame_id: str, rank: int, digest: bytes) -> bytes:
        return self._seal_mac.mac(seal_mac_input(frame_id, rank, digest))

    def _live_level_above(self, rank: int, digest: bytes) -> str | None:
        """The highest level above ``rank`` at which ``digest`` is live, if there is one."""
        ranks = self._ranks_by_digest.get(digest)
        highest = max(ranks) if ranks else -1
        return _name(highest) if highest > rank else None

    def _refuse_downgrade(self, rank: int, digest: bytes) -> None:
        # The same bytes cannot be both SECRET and OFFICIAL: an origin frame whose content is a
        # live frame's at a higher level is that frame relabelled, whatever the caller meant.
        higher = self._live_level_above(rank, digest)
        if higher is not None:
            raise Refusal(
                ErrorCode.DOWNGRADE_REFUSED,
                f"content {digest.hex()[:16]}… is live at {higher}: it cannot become an origin "
                f"frame at {_name(rank)}",
            )

    def _register(self, rank: int, digest: bytes) -> dict[str, Any]:
        frame_id = f"{self._frame_id_prefix}{next(self._frame_counter)}"
        self._frames[frame_id] = (rank, digest)
        self._ranks_by_digest.setdefault(digest, collections.Counter())[rank] += 1
        return {
            "frame_id": frame_id,
            "level": rank,
            "digest": digest,
            "seal": self._seal_mac.mac(seal_mac_input(frame_id, rank, digest)),
        }

    def _forget_rank(self, rank: int, digest: bytes) -> None:
        ranks = self._ranks_by_digest[digest]
        ranks[rank] -= 1
        if not ranks[rank]:
            del ranks[rank]
        if not ranks:
            del self._ranks_by_digest[digest]

    def _require_frame_room(self, count: int) -> None:
        if len(self._frames) + count > self._max_live_frames:
            raise Refusal(
                ErrorCode.LIMIT,
                f"{len(self._frames)} live frames, limit {self._max_live_frames}: retire frames "
                "that are no longer needed (or raise max_live_frames)",
            )

    def _derived_rank(self, item: Mapping[str, Any]) -> int:
        frames = self._frames
        floor: int | None = item["floor"]
        rank = 0 if floor is None else floor
        for parent in item["parent_ids"]:
            registration = frames.get(parent)
            if registration is None:
                raise Refusal(
                    ErrorCode.UNKNOWN_FRAME,
                    f"frame {parent} is not live (retired or never issued)",
                )
            rank = max(rank, registration[0])
        self._check_ceiling(rank)
        return rank

    def _verify(self, item: Mapping[str, Any]) -> str | None:
        """Why a certificate does not match its live registration, or ``None`` if it does."""
        frame_id: str = item["frame_id"]
        registration = self._frames.get(frame_id)
        if registration is None:
            return f"frame {frame_id} is not live (retired or never issued)"
        rank, digest = registration
        if rank != item["level"]:
            return f"frame {frame_id}: level differs from the registered level"
        if digest != item["digest"]:
            return f"frame {frame_id}: digest differs from the registered digest"
        if not hmac.compare_digest(self._seal(frame_id, rank, digest), item["seal"]):
            return f"frame {frame_id}: seal does not verify"
        return None

    # --- grants --------------------------------------------------------------------------

    def expire_grants(self) -> int:
        """Drop grants past their expiry; run periodically so the table never fills with them."""
        now = self._clock()
        expired = [grant_id for grant_id, g in self._grants.items() if g.expires_at <= now]
        for grant_id in expired:
            del self._grants[grant_id]
        self.counters.grants_expired += len(expired)
        return len(expired)

    def authorize_construct(self, args: Mapping[str, Any]) -> HandlerResult:
        rank: int = args["level"]
        digest: bytes = args["digest"]
        self._check_ceiling(rank)
        self._refuse_downgrade(rank, digest)
        if len(self._grants) >= self._max_grants and not self.expire_grants():
            raise Refusal(
                ErrorCode.LIMIT,
                f"{len(self._grants)} outstanding grants, limit {self._max_grants}: redeem "
                "grants promptly (or raise max_grants)",
            )
        expires_at = self._clock() + self._grant_ttl
        expires_wall = self._wall_clock() + self._grant_ttl
        random_part = secrets.token_bytes(GRANT_RANDOM_SIZE)
        tag = self._grant_mac.mac(
            grant_mac_input(random_part, rank, digest, int(expires_wall * 1000))
        )
        grant_id = random_part + tag[:GRANT_TAG_SIZE]
        self._grants[grant_id] = _Grant(rank, digest, expires_at)
        self.counters.grants_issued += 1
        result = {
            "grant_id": grant_id,
            "level": rank,
            "digest": digest,
            "expires_at": expires_wall,
        }
        return result, {"level": _name(rank), "digest": digest.hex(), "ttl": self._grant_ttl}

    def redeem_grant(self, args: Mapping[str, Any]) -> HandlerResult:
        grant_id: bytes = args["grant_id"]
        grant = self._grants.pop(grant_id, None)
        if grant is None:
            raise Refusal(
                ErrorCode.UNKNOWN_GRANT,
                "grant is unknown: never issued by this daemon, already redeemed or expired",
            )
        if grant.expires_at <= self._clock():
            self.counters.grants_expired += 1
            raise Refusal(ErrorCode.GRANT_EXPIRED, "grant expired before it was redeemed")
        # Checked again: the higher frame may have been registered after the grant was issued.
        self._refuse_downgrade(grant.rank, grant.digest)
        self._require_frame_room(1)
        result = self._register(grant.rank, grant.digest)
        self.counters.frames_issued += 1
        return result, {"frame_id": result["frame_id"], "level": _name(grant.rank)}

    # --- frames --------------------------------------------------------------------------

    def derive(self, args: Mapping[str, Any]) -> HandlerResult:
        rank = self._derived_rank(args)
        self._require_frame_room(1)
        # Not refused, unlike a construction: a derived level comes from the parents, and the same
        # content is legitimately derived at two levels (an experiment with a floor and one
        # without, over the same data). The audit record lets a reviewer see it.
        higher_copy = self._live_level_above(rank, args["digest"])
        result = self._register(rank, args["digest"])
        self.counters.frames_issued += 1
        audit = {
            "parents": list(args["parent_ids"]),
            "frame_id": result["frame_id"],
            "level": _name(rank),
            "digest": args["digest"].hex(),
        }
        if higher_copy is not None:
            audit["live_at_higher_level"] = higher_copy
        return result, audit

    def derive_batch(self, args: Mapping[str, Any]) -> HandlerResult:
        items = args["items"]
        # All or nothing: every level is computed and every limit checked before any frame is
        # registered, so a refused batch leaves no partial state behind.
        ranks = [self._derived_rank(item) for item in items]
        self._require_frame_room(len(items))
        pairs = list(zip(ranks, items, strict=True))
        higher_copies = sum(
            self._live_level_above(rank, item["digest"]) is not None for rank, item in pairs
        )
        register = self._register
        results = [register(rank, item["digest"]) for rank, item in pairs]
        self.counters.frames_issued += len(results)
        audit = {
            "count": len(results),
            "first_frame_id": results[0]["frame_id"],
            "last_frame_id": results[-1]["frame_id"],
            "highest_level": _name(max(ranks)),
        }
        if higher_copies:
            audit["live_at_higher_level"] = higher_copies
        return {"items": results}, audit

    def verify_seal(self, args: Mapping[str, Any]) -> HandlerResult:
        problem = self._verify(args)
        if problem is not None:
            raise Refusal(ErrorCode.SEAL_INVALID, problem)
        return {"valid": True}, {"frame_id": args["frame_id"], "level": _name(args["level"])}

    def verify_batch(self, args: Mapping[str, Any]) -> HandlerResult:
        items = args["items"]
        problems = [(index, self._verify(item)) for index, item in enumerate(items)]
        failed = [(index, problem) for index, problem in problems if problem is not None]
        if failed:
            index, first = failed[0]
            raise Refusal(
                ErrorCode.SEAL_INVALID,
                f"{len(failed)} of {len(items)} seals do not verify; first, item {index}: {first}",
                failed=[index for index, _ in failed],
            )
        return {"valid": True, "count": len(items)}, {"count": len(items)}

    def retire(self, args: Mapping[str, Any]) -> HandlerResult:
        retired = 0
        for frame_id in args["frame_ids"]:
            registration = self._frames.pop(frame_id, None)
            if registration is not None:
                self._forget_rank(*registration)
                retired += 1
        self.counters.frames_retired += retired
        return {"retired": retired}, {"frame_ids": list(args["frame_ids"]), "retired": retired}

    # --- checkpoints ---------------------------------------------------------------------

    def checkpoint_mac(self, args: Mapping[str, Any]) -> HandlerResult:
        record: bytes = args["record"]
        mac = self._checkpoint_mac.mac(checkpoint_mac_input(record))
        return {"mac": mac}, {"record_bytes": len(record)}

    def checkpoint_verify(self, args: Mapping[str, Any]) -> HandlerResult:
        record: bytes = args["record"]
        if not self._checkpoint_mac.verify(checkpoint_mac_input(record), args["mac"]):
            raise Refusal(
                ErrorCode.CHECKPOINT_INVALID,
                "checkpoint record does not verify under the checkpoint key: it was altered, "
                "or MAC'd under another checkpoint key",
            )
        return {"valid": True}, {"record_bytes": len(record)}

    # --- health --------------------------------------------------------------------------

    def health(self, args: Mapping[str, Any]) -> HandlerResult:
        result = {
            "status": "ok",
            "protocol": PROTOCOL_VERSION,
            "mode": self.mode,
            "boot_id": self.boot_id.hex(),
            "uptime_seconds": self._clock() - self._started,
            "live_frames": len(self._frames),
            "grants": len(self._grants),
            "counters": self.counters.snapshot(),
        }
        return result, {}
