"""One experiment's steps, run: resume from its checkpoint, ask the model within the budgets,
the judges and the row plugins per chunk, the aggregators over every chunk, then its sinks."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final

from elspeth.audit import BudgetStop, LlmStageDone, Resumed
from elspeth.config import BudgetSettings, Experiment, Suite
from elspeth.llm import (
    EARLY_STOP,
    Budget,
    LLMStage,
    PricingTable,
    PromptPack,
    RateLimiter,
    ResponseCache,
    RetryPolicy,
    create_client,
)
from elspeth.orchestrator import PluginInfo, PluginRuntime
from elspeth.security import SecureDataFrame
from elspeth.sidecar import SidecarClient
from elspeth.sinks import ExperimentReport, ReportSink, RunManifest
from elspeth.suite._audit import AuditLog
from elspeth.suite._checkpoint import CheckpointWriter, read_checkpoint
from elspeth.suite._judge import JUDGE_BUDGET, JudgeRun
from elspeth.suite._outcome import ErrorTally
from elspeth.suite._outputs import OutputWriter
from elspeth.suite._plan import ExperimentSteps, SuitePlan
from elspeth.suite._progress import Progress
from elspeth.suite._rows import ChunkedRows
from elspeth.suite._summary import ExperimentSummary
from elspeth.suite._validate import is_priced, prompt_pack

EXPERIMENT_BUDGET: Final = "experiment budget"
SUITE_BUDGET: Final = "suite budget"
BUDGET_SCOPES: Final = (EXPERIMENT_BUDGET, SUITE_BUDGET)


@dataclass(frozen=True)
class RunContext:
    """What every step of one run uses."""

    suite: Suite
    run_dir: Path
    cache_dir: Path
    progress: Progress
    authority: SidecarClient
    runtime: PluginRuntime
    plan: SuitePlan
    infos: Mapping[str, PluginInfo]
    manifest: RunManifest
    audit: AuditLog
    outputs: OutputWriter
    report_sinks: Mapping[str, ReportSink]


@dataclass
class BudgetUse:
    """What the experiments so far used against the suite budget (their checkpoints included)."""

    cost: Decimal = Decimal(0)
    rows: int = 0


def run_experiment(
    context: RunContext,
    steps: ExperimentSteps,
    chunks: Sequence[SecureDataFrame],
    used: BudgetUse,
) -> tuple[ExperimentSummary, ExperimentReport]:
    """Run one experiment; ``used`` (the suite budget's use so far) grows by what it used."""
    suite, experiment, audit = context.suite, steps.experiment, context.audit
    checkpoint = context.run_dir / f"checkpoint-{experiment.name}.jsonl"
    fingerprint = _fingerprint(suite, experiment, chunks)
    restored = {
        answer.key: answer for answer in read_checkpoint(checkpoint, fingerprint, context.authority)
    }
    if restored:
        audit.record(Resumed(experiment=experiment.name, answers=len(restored)))
    pack = prompt_pack(suite, experiment)
    # What the checkpoint already used: its answers' cost, and the rows it has whole (a row
    # with answers missing starts again, and the stage counts it then).
    spent = sum((a.cost for a in restored.values()), Decimal(0))
    per_row = collections.Counter(key[0] for key in restored)
    whole_rows = sum(n >= len(pack.criteria) * experiment.repeats for n in per_row.values())
    budgets = (
        _budget(experiment.budget, EXPERIMENT_BUDGET, spent, whole_rows),
        _budget(suite.settings.budget, SUITE_BUDGET, used.cost + spent, used.rows + whole_rows),
    )
    stage = _llm_stage(suite, experiment, pack, budgets, context.cache_dir)
    priced = is_priced(suite, experiment)
    tally = ErrorTally()
    judges = [
        JudgeRun(
            step,
            suite=suite,
            experiment=experiment,
            audit=audit,
            cache_dir=context.cache_dir,
            tally=tally,
            progress=context.progress,
            rows=sum(chunk.shape[0] for chunk in chunks) * experiment.repeats,
        )
        for step in steps.judges
    ]
    rows = ChunkedRows(
        steps,
        runtime=context.runtime,
        audit=audit,
        progress=context.progress,
        chunks=chunks,
        criteria=pack.criteria,
        model_clearance=suite.settings.models[experiment.model].clearance,
        priced=priced,
        restored=restored,
        writer=CheckpointWriter(checkpoint, fingerprint, context.authority),
        judges=judges,
        tally=tally,
    )
    try:
        stage_summary = stage.run_sync(
            rows.rows(),
            level=steps.llm.incoming,
            on_result=rows.on_result,
            done=set(restored),
            should_stop=rows.stop.is_set,
        )
        frames = rows.finished_frames()
    finally:
        rows.close()
    used.cost += stage_summary.cost + spent
    used.rows += stage_summary.rows_started + whole_rows
    early = rows.stop.is_set()
    for judge in judges:
        judge.finish()
    judged = next((j.totals for j in judges if j.totals.partial), None)
    summary = ExperimentSummary(
        experiment.name,
        # What the results files hold: the finished chunks' rows (x repeats); answers and
        # errors count every answer this run has, also those of unfinished chunks.
        rows=sum(frame.shape[0] for frame in frames),
        rows_loaded=rows.offsets[-1],
        answers=stage_summary.ok + len(restored),
        errors=stage_summary.errors,
        tally=rows.tally,
        cached=stage_summary.cached,
        resumed=len(restored),
        retries=stage_summary.retries,
        cost=stage_summary.cost + spent,
        cost_unknown=not priced,
        prompt_tokens=stage_summary.prompt_tokens,
        completion_tokens=stage_summary.completion_tokens,
        partial=stage_summary.partial or judged is not None,
        stop_reason=stage_summary.stop_reason
        or (judged.stop_reason if judged is not None else None)
        or ("early stop requested by a row plugin" if early else None),
        stopped_by=stage_summary.stopped_by
        or (JUDGE_BUDGET if judged is not None else None)
        or (EARLY_STOP if early else None),
        early_stopped=early,
        judges={judge.name: judge.totals.as_dict() for judge in judges},
    )
    decided = stage_summary.budget_stop
    if decided is not None:
        audit.record(
            BudgetStop(
                experiment=experiment.name,
                scope=decided.scope,
                limit=decided.limit,
                max_cost=None if decided.max_cost is None else str(decided.max_cost),
                max_rows=decided.max_rows,
                spent=str(decided.spent),
                rows=decided.rows,
                partial=stage_summary.partial,
            )
        )
    done_record = stage_summary.as_dict()
    if summary.cost_unknown:
        done_record["cost"] = None
    audit.record(LlmStageDone(experiment=experiment.name, **done_record))
    aggregates: dict[str, SecureDataFrame] = {}
    if frames:
        # A budget stop still writes the finished chunks; the manifest then says partial.
        aggregates = _aggregate_and_write(context, steps, frames, summary)
    return summary, ExperimentReport(
        name=experiment.name,
        baseline=experiment.baseline,
        model=experiment.model,
        prompt_pack=experiment.prompt_pack,
        criteria=tuple(pack.criteria),
        summary=summary.as_dict(),
        results=tuple(frames),
        aggregates=aggregates,
        references=suite.settings.datasource.target,
    )


def _aggregate_and_write(
    context: RunContext,
    steps: ExperimentSteps,
    frames: Sequence[SecureDataFrame],
    summary: ExperimentSummary,
) -> dict[str, SecureDataFrame]:
    name = steps.experiment.name
    outputs: list[tuple[str, list[SecureDataFrame]]] = [("results", list(frames))]
    aggregates: dict[str, SecureDataFrame] = {}
    for step in steps.aggregators:
        result = step.run(context.runtime, frames, f"{name}:all")
        if result.produced:
            aggregates[step.instance] = result.produced[0]
            outputs.append((step.instance, [result.produced[0]]))
    for sink in steps.sinks:
        for label, output in outputs:
            artifact = context.outputs.write_frames(sink, f"{name}__{label}", output)
            summary.outputs.append(artifact.path.name)
    return aggregates


def _llm_stage(
    suite: Suite,
    experiment: Experiment,
    pack: PromptPack,
    budgets: Sequence[Budget],
    cache_dir: Path,
) -> LLMStage:
    settings = suite.settings
    model = settings.models[experiment.model]
    client_options = dict(model.options())
    if experiment.parameters and model.type != "mock":
        client_options["parameters"] = dict(experiment.parameters)
    limits = experiment.rate_limits
    limiter = (
        RateLimiter(
            requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute,
        )
        if limits.requests_per_minute or limits.tokens_per_minute
        else None
    )
    pricing = PricingTable.from_mapping(
        {name: price.model_dump() for name, price in settings.pricing.items()}
    )
    return LLMStage(
        create_client(model.type, client_options),
        pack,
        concurrency=experiment.concurrency,
        rate_limiter=limiter,
        retry_policy=RetryPolicy(max_retries=experiment.max_retries),
        cache=ResponseCache(cache_dir) if settings.defaults.cache else None,
        pricing=pricing,
        budget=budgets,
        repeats=experiment.repeats,
    )


def _budget(settings: BudgetSettings, scope: str, spent: Decimal, rows: int) -> Budget:
    """The stage's form of a budget, with what earlier work already used against it."""
    return Budget(
        max_cost=settings.max_cost,
        max_rows=settings.max_rows,
        scope=scope,
        spent=spent,
        rows_used=rows,
    )


def _fingerprint(suite: Suite, experiment: Experiment, chunks: Sequence[SecureDataFrame]) -> str:
    settings = suite.settings
    described = {
        # The budget and the error tolerance are left out: they limit how much is asked and
        # what is accepted, not what an answer is, so a run stopped by its budget can be
        # resumed with a larger one, and a failed run with a wider tolerance.
        "experiment": repr(
            dataclasses.replace(experiment, budget=BudgetSettings(), max_error_rate=0.0)
        ),
        "model": settings.models[experiment.model].model_dump(mode="json"),
        "prompts": settings.prompt_packs[experiment.prompt_pack].model_dump(mode="json"),
        "data": [chunk.digest.hex() for chunk in chunks],
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
