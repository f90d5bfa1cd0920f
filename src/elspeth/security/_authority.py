"""The seal-authority interface: the only thing that can bless a SecureDataFrame.

The production authority is the sidecar daemon (:mod:`elspeth.sidecar`), reached through its
client. This module only defines the contract and the records that cross it, so the security core
does not depend on any transport.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from elspeth.security._levels import SecurityLevel

DIGEST_SIZE = 32
"""Bytes in a canonical frame digest (BLAKE3-256)."""


@dataclass(frozen=True, slots=True)
class FrameCertificate:
    """What the authority registered for one frame: its id, level, content digest and seal.

    ``frame_id`` is issued by the authority (boot id and counter) and never reused. ``seal`` is a
    keyed MAC over (frame id, level, digest) that only the authority can compute or check.
    ``audit_id`` names the authority's audit record of the operation that issued it.
    """

    frame_id: str
    level: SecurityLevel
    digest: bytes
    seal: bytes
    audit_id: int


@dataclass(frozen=True, slots=True)
class OriginGrant:
    """A one-shot permission to mint one origin frame of ``level`` over content ``digest``."""

    grant_id: bytes
    level: SecurityLevel
    digest: bytes
    expires_at: float
    audit_id: int


@dataclass(frozen=True, slots=True)
class DeriveRequest:
    """One derivation: new content ``digest`` made from ``parent_ids``, marked at least ``floor``.

    The authority computes the new level as the join of every parent's level and the floor; a
    caller cannot ask for less.
    """

    parent_ids: tuple[str, ...]
    digest: bytes
    floor: SecurityLevel | None = None


class SealAuthority(abc.ABC):
    """Issues frame ids and seals; the daemon client implements this against the sidecar.

    Every method either returns what the authority registered or raises a
    :class:`~elspeth.security.SecurityError` subclass. Implementations never retry a security
    operation: a failure fails the run closed.
    """

    @abc.abstractmethod
    def authorize_construct(self, level: SecurityLevel, digest: bytes) -> OriginGrant:
        """Ask for a one-shot grant to mint an origin frame (datasources only)."""

    @abc.abstractmethod
    def redeem_grant(self, grant: OriginGrant) -> FrameCertificate:
        """Redeem a grant once, receiving the new frame's id and seal."""

    @abc.abstractmethod
    def derive(
        self, parent_ids: Sequence[str], digest: bytes, floor: SecurityLevel | None = None
    ) -> FrameCertificate:
        """Register new content derived from live parent frames; the authority sets the level."""

    def derive_batch(self, requests: Sequence[DeriveRequest]) -> list[FrameCertificate]:
        """Several derivations in one round trip where the authority supports it."""
        return [self.derive(r.parent_ids, r.digest, r.floor) for r in requests]

    @abc.abstractmethod
    def verify_seal(self, certificate: FrameCertificate) -> int:
        """Check id, level, digest and seal against the live registration; return the audit id.

        Raises :class:`~elspeth.security.SealError` on any mismatch or a retired frame.
        """

    def verify_batch(self, certificates: Sequence[FrameCertificate]) -> list[int]:
        """Several verifications in one round trip where the authority supports it."""
        return [self.verify_seal(c) for c in certificates]

    @abc.abstractmethod
    def retire(self, frame_ids: Sequence[str]) -> None:
        """Forget frames that are no longer needed; they will never verify again."""
