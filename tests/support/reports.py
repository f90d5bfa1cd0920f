"""A realistic :class:`SuiteReport` over real sealed frames, for report and bundle tests.

Three experiments (a baseline and two variants) over the same 40 rows, two criteria, the row
columns the suite runner writes, a ``score_summary``-shaped aggregate per experiment and a
``score_comparison``-shaped frame per variant. Every frame is minted by the real seal authority
passed in, at ``level``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elspeth.outcome import RunStatus
from elspeth.security import (
    ComponentSpec,
    PipelineSpec,
    SealAuthority,
    SecureDataFrame,
    SecurityLevel,
    build_clearance_plan,
)
from elspeth.sinks import ComparisonReport, ExperimentReport, PluginRecord, SuiteReport

CRITERIA = ("urgency", "clarity")
EXPERIMENTS = ("baseline", "terse_prompt", "second_opinion")
ROWS = 40
RUN_ID = "20261129T010000Z-abc123"

# Text a spreadsheet or a browser would act on if it were not neutralised or escaped.
HOSTILE_MESSAGE = '=HYPERLINK("http://example.invalid","x") <script>alert(1)</script>'


def row_data(experiment_index: int, rows: int = ROWS) -> pd.DataFrame:
    """Row frames shaped like the runner's: data columns, ``_row``, per-criterion LLM columns
    (response, outcome, tokens, cost, latency) and extracted scores. Row 3 is an ERROR."""
    generator = np.random.default_rng(100 + experiment_index)
    data: dict[str, Any] = {
        "request_id": [f"REQ-{i:04d}" for i in range(rows)],
        "service_area": ["roads" if i % 2 else "housing" for i in range(rows)],
        "message": [HOSTILE_MESSAGE if i == 0 else f"request number {i}" for i in range(rows)],
        "_row": list(range(rows)),
    }
    for criterion in CRITERIA:
        scores = np.clip(generator.normal(3 + 0.4 * experiment_index, 1.0, rows).round(), 1, 5)
        outcome = ["error" if i == 3 else "ok" for i in range(rows)]
        data[f"{criterion}_response"] = pd.Series(
            [
                None if o == "error" else f'{{"score": {int(s)}}}'
                for s, o in zip(scores, outcome, strict=True)
            ],
            dtype="str",
        )
        data[f"{criterion}_outcome"] = outcome
        data[f"{criterion}_prompt_tokens"] = pd.array(
            [None if o == "error" else 40 + i % 7 for i, o in enumerate(outcome)], dtype="Int64"
        )
        data[f"{criterion}_completion_tokens"] = pd.array(
            [None if o == "error" else 12 for o in outcome], dtype="Int64"
        )
        data[f"{criterion}_cost"] = [0.0 if o == "error" else 0.0001 for o in outcome]
        data[f"{criterion}_latency_ms"] = generator.gamma(4.0, 30.0, rows).round(1)
        data[f"{criterion}_score"] = [
            np.nan if o == "error" else float(s) for s, o in zip(scores, outcome, strict=True)
        ]
    return pd.DataFrame(data)


def summary_data(results: pd.DataFrame) -> pd.DataFrame:
    """A ``score_summary``-shaped aggregate (values plausible, not the plugin's own)."""
    rows = []
    for criterion in CRITERIA:
        scores = results[f"{criterion}_score"].dropna()
        rows.append(
            {
                "criterion": criterion,
                "rows": len(results),
                "scored": len(scores),
                "errors": int((results[f"{criterion}_outcome"] == "error").sum()),
                "mean": float(scores.mean()),
                "ci_low": float(scores.mean() - 0.3),
                "ci_high": float(scores.mean() + 0.3),
                "pass_rate": float((scores >= 3).mean()),
            }
        )
    return pd.DataFrame(rows)


def comparison_data(baseline: pd.DataFrame, variant: pd.DataFrame) -> pd.DataFrame:
    """A ``score_comparison``-shaped frame (values plausible, not the plugin's own)."""
    rows = []
    for criterion in CRITERIA:
        base = baseline[f"{criterion}_score"].dropna()
        other = variant[f"{criterion}_score"].dropna()
        difference = float(other.mean() - base.mean())
        rows.append(
            {
                "criterion": criterion,
                "baseline_mean": float(base.mean()),
                "variant_mean": float(other.mean()),
                "difference": difference,
                "ci_low": difference - 0.4,
                "ci_high": difference + 0.4,
                "test": "mann_whitney_u",
                "p_value": 0.03,
                "cliffs_delta": 0.21,
                "verdict": f"{criterion}: variant higher by {difference:.2f}",
            }
        )
    return pd.DataFrame(rows)


def make_suite_report(
    authority: SealAuthority,
    *,
    level: SecurityLevel = SecurityLevel.OFFICIAL,
    audit_log: Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> SuiteReport:
    """The report, with a clearance plan whose every component is cleared for ``level``."""
    experiments = []
    results_by_name: dict[str, SecureDataFrame] = {}
    for index, name in enumerate(EXPERIMENTS):
        data = row_data(index)
        first = SecureDataFrame.create_from_datasource(data.iloc[:25], level, authority)
        second = SecureDataFrame.create_from_datasource(
            data.iloc[25:].reset_index(drop=True), level, authority
        )
        aggregate = SecureDataFrame.derive_from([first, second], summary_data(data))
        results_by_name[name] = first
        experiments.append(
            ExperimentReport(
                name=name,
                baseline=index == 0,
                model="mock",
                prompt_pack="triage",
                criteria=CRITERIA,
                summary={
                    "name": name,
                    "rows": ROWS,
                    "answers": 2 * ROWS - 2,
                    "errors": 2,
                    "cached": 0,
                    "resumed": 0,
                    "retries": 1,
                    "cost": "0.0078",
                    "prompt_tokens": 3400,
                    "completion_tokens": 940,
                    "partial": False,
                    "stop_reason": None,
                    "early_stopped": False,
                },
                results=(first, second),
                aggregates={"score_summary": aggregate},
            )
        )
    baseline_data = experiments[0].results_data()
    comparisons = tuple(
        ComparisonReport(
            comparison="versus_baseline",
            baseline=EXPERIMENTS[0],
            variant=experiment.name,
            frame=SecureDataFrame.derive_from(
                [*experiments[0].results, *experiment.results],
                comparison_data(baseline_data, experiment.results_data()),
            ),
        )
        for experiment in experiments[1:]
    )
    components = [ComponentSpec("datasource", "datasource", level, classification=level)]
    components.extend(
        ComponentSpec(f"{name}/llm", "llm", level, inputs=("datasource",)) for name in EXPERIMENTS
    )
    plan = build_clearance_plan(PipelineSpec(tuple(components)))
    return SuiteReport(
        suite="service-request-triage",
        description="Rate how urgent each request is.",
        run_id=RUN_ID,
        created_at=dt.datetime(2026, 11, 29, 1, 0, tzinfo=dt.UTC).isoformat(),
        experiments=tuple(experiments),
        comparisons=comparisons,
        plan=plan,
        settings=settings or {"suite": {"name": "service-request-triage"}},
        plugins=(
            PluginRecord("urgency_score", "score_extractor", "row_plugin", "elspeth 0.1.0", {}),
            PluginRecord("score_summary", "score_summary", "aggregator", "elspeth 0.1.0", {}),
        ),
        artifacts=(),
        status=RunStatus.COMPLETE,
        audit_log=audit_log,
    )
