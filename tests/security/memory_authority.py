"""A seal authority that lives in the test process: for unit tests of the security core only.

The product never uses this: production frames are sealed by the sidecar daemon. It follows the
daemon's rules (ids issued here, one-shot grants, level = join of parents and floor, verification
against the live registration) so the core's unit tests exercise the same contract.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import Sequence

from elspeth.security import (
    FrameCertificate,
    OriginGrant,
    SealAuthority,
    SealError,
    SecurityError,
    SecurityLevel,
    join,
)


class InMemorySealAuthorityForTests(SealAuthority):
    def __init__(self, grant_ttl: float = 60.0) -> None:
        self._key = secrets.token_bytes(32)
        self._boot = secrets.token_hex(8)
        self._counter = itertools.count(1)
        self._audit = itertools.count(1)
        self._grants: dict[bytes, OriginGrant] = {}
        self._frames: dict[str, tuple[SecurityLevel, bytes]] = {}
        self._ttl = grant_ttl
        self.calls: list[str] = []

    def _seal(self, frame_id: str, level: SecurityLevel, digest: bytes) -> bytes:
        message = frame_id.encode() + bytes([level.rank]) + digest
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _issue(self, level: SecurityLevel, digest: bytes) -> FrameCertificate:
        frame_id = f"{self._boot}-{next(self._counter)}"
        self._frames[frame_id] = (level, digest)
        return FrameCertificate(
            frame_id, level, digest, self._seal(frame_id, level, digest), next(self._audit)
        )

    def authorize_construct(self, level: SecurityLevel, digest: bytes) -> OriginGrant:
        self.calls.append("authorize_construct")
        grant = OriginGrant(
            secrets.token_bytes(16), level, digest, time.time() + self._ttl, next(self._audit)
        )
        self._grants[grant.grant_id] = grant
        return grant

    def redeem_grant(self, grant: OriginGrant) -> FrameCertificate:
        self.calls.append("redeem_grant")
        registered = self._grants.pop(grant.grant_id, None)
        if registered is None or registered != grant:
            raise SecurityError("unknown or already redeemed grant")
        if registered.expires_at < time.time():
            raise SecurityError("grant expired")
        return self._issue(registered.level, registered.digest)

    def derive(
        self, parent_ids: Sequence[str], digest: bytes, floor: SecurityLevel | None = None
    ) -> FrameCertificate:
        self.calls.append("derive")
        try:
            levels = [self._frames[p][0] for p in parent_ids]
        except KeyError as missing:
            raise SealError(f"unknown parent frame {missing}") from None
        return self._issue(join(*levels, *((floor,) if floor else ())), digest)

    def verify_seal(self, certificate: FrameCertificate) -> int:
        self.calls.append("verify_seal")
        registered = self._frames.get(certificate.frame_id)
        expected = self._seal(certificate.frame_id, certificate.level, certificate.digest)
        if registered != (certificate.level, certificate.digest) or not hmac.compare_digest(
            expected, certificate.seal
        ):
            raise SealError(f"seal check failed for frame {certificate.frame_id}")
        return next(self._audit)

    def retire(self, frame_ids: Sequence[str]) -> None:
        self.calls.append("retire")
        for frame_id in frame_ids:
            self._frames.pop(frame_id, None)
