"""The embedded default job: seal the bundled sample and show the sample pipeline's plan."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from elspeth.security import (
    ClearancePlan,
    ComponentSpec,
    PipelineSpec,
    SecureDataFrame,
    SecurityLevel,
    require_clearance_plan,
)

SAMPLE_DATASET = "service_requests.csv"
SAMPLE_CLASSIFICATION = SecurityLevel.OFFICIAL


def sample_pipeline() -> PipelineSpec:
    """The sample suite's pipeline, as the clearance plan sees it."""
    level = SecurityLevel
    return PipelineSpec.linear(
        ComponentSpec(
            "service_requests",
            "datasource",
            clearance=level.OFFICIAL,
            classification=SAMPLE_CLASSIFICATION,
        ),
        [
            ComponentSpec("mock-llm", "llm", clearance=level.OFFICIAL_SENSITIVE),
            ComponentSpec("score_extractor", "row_plugin", clearance=level.OFFICIAL),
            ComponentSpec(
                "triage_review",
                "row_plugin",
                clearance=level.OFFICIAL_SENSITIVE,
                output_floor=level.OFFICIAL_SENSITIVE,
            ),
        ],
        [
            ComponentSpec("results_csv", "sink", clearance=level.OFFICIAL_SENSITIVE),
            ComponentSpec("results_jsonl", "sink", clearance=level.PROTECTED),
        ],
    )


def plan_table(plan: ClearancePlan) -> Table:
    table = Table(title="Clearance plan (checked before any data is read)")
    for column in ("component", "kind", "clearance", "receives", "emits", "verdict"):
        table.add_column(column)
    for entry in plan.entries:
        component = entry.component
        table.add_row(
            component.name,
            component.kind,
            str(component.clearance),
            str(entry.incoming),
            str(entry.outgoing),
            "ok" if entry.allowed else "[bold red]REFUSED[/]",
        )
    return table


def run_sample_job(*, state_dir: str | None = None) -> None:
    import pandas as pd

    from elspeth.sidecar import start_standalone_daemon

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    plan = require_clearance_plan(sample_pipeline())
    console.print(
        "[bold yellow]STANDALONE MODE[/]: a private sidecar daemon runs for this job only; "
        "levels above OFFICIAL_SENSITIVE are refused."
    )
    source = resources.files("elspeth") / "_data" / SAMPLE_DATASET
    with resources.as_file(source) as path:
        data = pd.read_csv(path)
    with (
        start_standalone_daemon(state_dir=Path(state_dir) if state_dir else None) as daemon,
        daemon.connect() as client,
    ):
        frame = SecureDataFrame.create_from_datasource(data, SAMPLE_CLASSIFICATION, client)
        frame.verify_seal()
        rows, columns = frame.shape
        console.print(f"dataset        {SAMPLE_DATASET} (bundled sample)")
        console.print(f"classification {frame.security_level}")
        console.print(f"shape          {rows} rows x {columns} columns")
        console.print(f"digest         {frame.digest.hex()}")
        console.print(f"frame id       {frame.frame_id}")
        console.print(f"seal           verified by the daemon (boot {client.boot_id.hex()})")
    console.print(plan_table(plan))
