"""The runtime's audit events: every worker view's seal check, every derived frame and every
refused proxy call reach ``on_audit`` with the daemon's audit ids and no content."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from elspeth.audit import AuditEvent, FrameDerived, ProxyRefused, WorkerViewVerified
from elspeth.orchestrator import ProxyRefusedError
from elspeth.orchestrator._runtime._plugin_runtime import PluginRuntime
from elspeth.security import SecurityLevel
from elspeth.sidecar import SidecarClient
from tests.orchestrator.conftest import MakeFrame, runtime_config


def _runtime(authority: SidecarClient, base: Path, events: list[AuditEvent]) -> PluginRuntime:
    return PluginRuntime(authority, runtime_config(base), on_audit=events.append)


def test_a_view_and_a_derived_frame_are_recorded_with_the_daemons_audit_ids(
    authority: SidecarClient, make_frame: MakeFrame, tmp_path: Path
) -> None:
    events: list[AuditEvent] = []
    frame = make_frame(pd.DataFrame({"answer": ['{"score": 4}', "CONTENT-never-audited"]}))
    with _runtime(authority, tmp_path, events) as runtime:
        result = runtime.run(
            "score_extractor",
            {"source": "answer", "output": "score", "json_field": "score"},
            [frame],
            chunk_id="base:0",
            plan_level=SecurityLevel.OFFICIAL,
        )

    (produced,) = result.produced
    views = [e for e in events if isinstance(e, WorkerViewVerified)]
    derived = [e for e in events if isinstance(e, FrameDerived)]
    assert views
    assert all(v.frame_id == frame.frame_id for v in views)
    assert all(v.audit_id > 0 and v.chunk_id == "base:0" for v in views)
    assert derived[-1].frame_id == produced.frame_id
    assert derived[-1].audit_id == produced.certificate.audit_id
    assert frame.frame_id in derived[-1].parents
    assert derived[-1].level == "OFFICIAL"
    assert "CONTENT-never-audited" not in repr(events)


def test_a_refused_proxy_call_is_recorded_without_its_text(
    authority: SidecarClient, make_frame: MakeFrame, tmp_path: Path
) -> None:
    events: list[AuditEvent] = []
    with _runtime(authority, tmp_path, events) as runtime, pytest.raises(ProxyRefusedError):
        runtime.run(
            "forged_handle",
            {"handle": "FORGED-TEXT-from-the-plugin"},
            [make_frame()],
            chunk_id="x",
            plan_level=SecurityLevel.OFFICIAL,
        )

    refused = [e for e in events if isinstance(e, ProxyRefused)]
    assert [(e.plugin, e.chunk_id, e.method, e.error) for e in refused] == [
        ("forged_handle", "x", "get_view", "ProxyRefusedError")
    ]
    assert "FORGED-TEXT" not in repr(events)
