"""The security core: levels, labelled frames, the seal-authority contract, digests, plans.

Everything here is pure policy and data: no sockets, no processes. The sidecar daemon implements
:class:`SealAuthority`; the orchestrator, sinks and workers use the rest. See
``docs/security-model.md`` for the model this code implements.

Heavy modules (pandas, pyarrow, blake3) load only when a frame or digest is first used, so a
sandboxed worker can import the lattice cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from elspeth.security._authority import (
    DIGEST_SIZE,
    DeriveRequest,
    FrameCertificate,
    OriginGrant,
    SealAuthority,
)
from elspeth.security._errors import (
    AuthorityError,
    ClearanceError,
    ClearancePlanError,
    DigestError,
    FrameConstructionError,
    LevelParseError,
    SealError,
    SecurityError,
    UnsupportedColumnError,
)
from elspeth.security._levels import (
    SecurityLevel,
    accepted_level_names,
    join,
    join_all,
    may_read,
)
from elspeth.security._plan import (
    ClearancePlan,
    ComponentSpec,
    PipelineSpec,
    PlanEntry,
    Violation,
    build_clearance_plan,
    require_clearance_plan,
)
from elspeth.security._redaction import REDACTED, is_secret_name, redact_secrets

if TYPE_CHECKING:
    from elspeth.security._digest import DIGEST_VERSION, canonical_digest, canonical_digest_table
    from elspeth.security._frame import SecureDataFrame

_LAZY = {
    "SecureDataFrame": "elspeth.security._frame",
    "canonical_digest": "elspeth.security._digest",
    "canonical_digest_table": "elspeth.security._digest",
    "DIGEST_VERSION": "elspeth.security._digest",
}

__all__ = [
    "DIGEST_SIZE",
    "DIGEST_VERSION",
    "REDACTED",
    "AuthorityError",
    "ClearanceError",
    "ClearancePlan",
    "ClearancePlanError",
    "ComponentSpec",
    "DeriveRequest",
    "DigestError",
    "FrameCertificate",
    "FrameConstructionError",
    "LevelParseError",
    "OriginGrant",
    "PipelineSpec",
    "PlanEntry",
    "SealAuthority",
    "SealError",
    "SecureDataFrame",
    "SecurityError",
    "SecurityLevel",
    "UnsupportedColumnError",
    "Violation",
    "accepted_level_names",
    "build_clearance_plan",
    "canonical_digest",
    "canonical_digest_table",
    "is_secret_name",
    "join",
    "join_all",
    "may_read",
    "redact_secrets",
    "require_clearance_plan",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'elspeth.security' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
