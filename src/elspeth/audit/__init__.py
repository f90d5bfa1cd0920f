"""The run's audit trail: its event types (the closed set), the hash chain that makes it
tamper-evident, the JSON Schema of its lines, and verifying a run's log.

Light on purpose: the orchestrator, the LLM stage and the bundle verifier import it, and it
imports none of them.
"""

from elspeth.audit._chain import (
    ChainCheck,
    ChainHead,
    chain_start,
    check_chain,
    check_head,
    head_of,
    line_hash,
)
from elspeth.audit._events import (
    EVENT_TYPES,
    Attempt,
    AuditEvent,
    AuthorityReady,
    BudgetStop,
    ClearanceDecision,
    EarlyStop,
    FrameDerived,
    FrameGranted,
    JudgeDone,
    JudgeResult,
    LlmResult,
    LlmStageDone,
    OutputWritten,
    PluginStep,
    ProxyRefused,
    Refusal,
    Resumed,
    RunFinished,
    RunStarted,
    SealVerified,
    WorkerViewVerified,
)
from elspeth.audit._schema import audit_json_schema
from elspeth.audit._verify import (
    AUDIT_NAME,
    MANIFEST_AUDIT_KEY,
    AuditInputError,
    verify_run_audit,
)

__all__ = [
    "AUDIT_NAME",
    "EVENT_TYPES",
    "MANIFEST_AUDIT_KEY",
    "Attempt",
    "AuditEvent",
    "AuditInputError",
    "AuthorityReady",
    "BudgetStop",
    "ChainCheck",
    "ChainHead",
    "ClearanceDecision",
    "EarlyStop",
    "FrameDerived",
    "FrameGranted",
    "JudgeDone",
    "JudgeResult",
    "LlmResult",
    "LlmStageDone",
    "OutputWritten",
    "PluginStep",
    "ProxyRefused",
    "Refusal",
    "Resumed",
    "RunFinished",
    "RunStarted",
    "SealVerified",
    "WorkerViewVerified",
    "audit_json_schema",
    "chain_start",
    "check_chain",
    "check_head",
    "head_of",
    "line_hash",
    "verify_run_audit",
]
