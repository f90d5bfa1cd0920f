"""Run a validated suite: one loop over the steps of its plan.

Order of a run (each step fails closed):
1. plugins are described and their parameters validated in a catalog worker (no data);
2. the clearance plan is built from the suite's steps and every violation reported — before
   the datasource is read and before any model call;
3. the load step: the datasource mints origin frames through the daemon, in chunks;
4. per experiment (``_experiment``): every chunk's rows are verified against the model's
   clearance and sent through the LLM stage; finished answers are checkpointed (MAC'd by the
   daemon); each completed chunk becomes a derived frame and goes through the row plugin steps
   in workers (``_rows``); then the aggregator steps, then the sink steps (``_outputs``);
5. the comparison steps and the pairwise judges, and their sinks;
6. the report steps, each seeing every experiment and comparison; the manifest says
   ``complete`` last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from elspeth.audit import (
    AuthorityReady,
    ClearanceDecision,
    FrameGranted,
    Refusal,
    RunFinished,
    RunStarted,
)
from elspeth.config import Suite
from elspeth.datasources import open_datasource
from elspeth.errors import ElspethError
from elspeth.orchestrator import PluginInfo, PluginRuntime
from elspeth.outcome import RunStatus
from elspeth.security import ClearancePlanError, SecureDataFrame
from elspeth.sidecar import SidecarClient, default_state_dir
from elspeth.sidecar._client._standalone import owned_temporary_directory
from elspeth.sinks import (
    ComparisonReport,
    ExperimentReport,
    PluginRecord,
    RunManifest,
    SinkError,
    SuiteReport,
)
from elspeth.suite._audit import AuditLog
from elspeth.suite._authority import open_authority
from elspeth.suite._experiment import BUDGET_SCOPES, BudgetUse, RunContext, run_experiment
from elspeth.suite._judge import JudgeCalls
from elspeth.suite._outcome import describe_os_error, outcome_of
from elspeth.suite._outputs import OutputWriter
from elspeth.suite._pairwise import PairwiseResult, run_pairwise, with_pairwise
from elspeth.suite._plan import SuitePlan, build_suite_plan
from elspeth.suite._progress import Progress
from elspeth.suite._reports import open_report_sink
from elspeth.suite._setup import (
    RunOptions,
    check_header,
    check_resumable,
    new_run_id,
    prepare_directory,
    runtime_config,
)
from elspeth.suite._summary import (
    RUNNING,
    RunSummary,
    check_experiment,
    cost_text,
    fail_on_audit_failure,
    finished_outcome,
)
from elspeth.suite._validate import (
    CATALOG_WORKER,
    NoAuthority,
    ceiling_refusal,
    check_suite,
    checks_declared_columns,
)

log = logging.getLogger("elspeth.suite")


class SuiteRunner:
    """Runs one suite once; see the module docstring for the order of events."""

    def __init__(self, suite: Suite, options: RunOptions) -> None:
        self.suite = suite
        self.options = options
        self.last_plan: SuitePlan | None = None
        if options.resume is not None:
            check_resumable(options.resume, options.output_dir)
        self.run_id = options.resume or new_run_id()
        self.run_dir = options.output_dir / self.run_id
        self._suite_used = BudgetUse()  # against the suite budget, by the experiments so far

    def validate(self) -> SuitePlan:
        """Every check a run makes before it reads anything, every problem at once; reads no
        data, calls no model and starts no daemon (nothing here needs the seal authority).

        The one process it may start is a catalog worker, and only when plugins are configured:
        the plugins check their own parameters there. The plan says what was started
        (``started``, ``started_line``) and the settings' warnings. Raises
        :class:`~elspeth.config.SettingsError` (exit 2) or, for standalone mode above its
        ceiling, :class:`StandaloneCeilingError` (a ``ClearanceError``, exit 3); the plan's own
        violations are in the returned plan.
        """
        started: list[str] = []
        if self.suite.settings.plugins:
            started.append(CATALOG_WORKER)
            with (
                owned_temporary_directory("elspeth-validate-") as scratch,
                PluginRuntime(NoAuthority(), runtime_config(self.suite, Path(scratch))) as runtime,
            ):
                infos = check_suite(runtime, self.suite)
        else:
            infos = check_suite(None, self.suite)
        plan = build_suite_plan(self.suite, infos)
        self.last_plan = dataclasses.replace(
            plan,
            started=tuple(started),
            warnings=tuple(warning.describe() for warning in self.suite.warnings),
        )
        log.info("validation %s", self.last_plan.started_line)
        refusal = ceiling_refusal(self.suite, plan.plan)
        if refusal is not None:
            raise refusal
        return self.last_plan

    def run(self, progress: Progress) -> RunSummary:
        """Run the suite. A run that started always returns its summary, whose outcome says how
        it ended (the error that ended it included); only a bad output directory raises."""
        os.umask(0o077)
        prepare_directory(self.options.output_dir, "output directory")
        if self.suite.settings.sidecar.mode == "standalone":
            prepare_directory(self.options.state_dir or default_state_dir(), "state directory")
        try:
            manifest = RunManifest.start(self.run_dir, self.run_id)
            audit = AuditLog(self.run_dir / "audit.jsonl", self.run_id)
        except OSError as error:
            raise SinkError(self.run_dir, describe_os_error(error)) from None
        summary = RunSummary(self.run_id, self.run_dir, RUNNING, [])
        try:
            self._run(manifest, audit, summary, progress)
        except (Exception, KeyboardInterrupt) as error:
            summary.error = error
            summary.outcome = outcome_of(error)
            if not isinstance(error, ElspethError | KeyboardInterrupt):
                log.debug("the run ended by %s", type(error).__name__, exc_info=error)
        summary.budget = self._budget_state(summary)
        audit.flush()
        fail_on_audit_failure(summary, audit)
        audit.record(RunFinished(**summary.outcome.as_dict()))
        audit.close()
        fail_on_audit_failure(summary, audit)
        try:
            manifest.finish(summary.status, summary.outcome.reason, audit=audit.head.as_record())
        except (OSError, SinkError) as error:
            summary.manifest_written = False
            log.error("the run's end could not be recorded in %s: %s", manifest.path, error)
        return summary

    def _run(
        self, manifest: RunManifest, audit: AuditLog, run: RunSummary, progress: Progress
    ) -> None:
        """The step loop, recording each experiment's summary in ``run`` as it ends."""
        settings = self.suite.settings
        audit.record(
            RunStarted(
                suite=settings.suite.name,
                resumed=bool(self.options.resume),
                experiments=tuple(e.name for e in self.suite.experiments),
                baseline=self.suite.baseline.name,
            )
        )
        with (
            open_authority(
                settings.sidecar,
                state_dir=self.options.state_dir,
                started=self.options.standalone_daemon,
            ) as authority,
            PluginRuntime(
                authority,
                runtime_config(self.suite, self.run_dir / "worker-logs"),
                on_audit=audit.record,
            ) as runtime,
        ):
            audit.record(AuthorityReady(boot_id=authority.boot_id.hex(), mode=authority.mode))
            infos = check_suite(runtime, self.suite)
            # Every suite-level sink is opened before any data is read: a bundle's signing key
            # is loaded and checked here, not after the model has been paid for.
            report_sinks = {
                name: open_report_sink(self.suite.report_sink(name)) for name in settings.reports
            }
            plan = self._require_plan(infos, audit)
            context = RunContext(
                suite=self.suite,
                run_dir=self.run_dir,
                cache_dir=self.options.output_dir / ".cache",
                progress=progress,
                authority=authority,
                runtime=runtime,
                plan=plan,
                infos=infos,
                manifest=manifest,
                audit=audit,
                outputs=OutputWriter(self.suite, manifest, audit),
                report_sinks=report_sinks,
            )
            chunks = self._load(authority, audit)
            experiments: list[ExperimentReport] = []
            for steps in plan.experiments:
                summary, done = run_experiment(context, steps, chunks, self._suite_used)
                run.experiments.append(summary)
                experiments.append(done)
                check_experiment(steps.experiment, summary)
            outcome = finished_outcome(run.experiments)
            results = {e.name: _concat(e.results) for e in experiments}
            run.comparisons, compared = _compare(context, results)
            for judged in _judge_pairs(context, results):
                run.comparisons += judged.written
                compared.append(judged.report)
                outcome = with_pairwise(outcome, judged)
            run.reports = self._write_reports(context, experiments, compared, outcome.status)
            run.outcome = outcome

    def _budget_state(self, summary: RunSummary) -> dict[str, Any]:
        limits = self.suite.settings.budget
        stopped_by = next(
            (e.stopped_by for e in summary.experiments if e.stopped_by in BUDGET_SCOPES), None
        )
        return {
            "suite": {
                "max_cost": cost_text(limits.max_cost),
                "max_rows": limits.max_rows,
                "cost_used": str(self._suite_used.cost),
                "rows_used": self._suite_used.rows,
            },
            "stopped_by": stopped_by,
        }

    def _require_plan(self, infos: Mapping[str, PluginInfo], audit: AuditLog) -> SuitePlan:
        suite_plan = build_suite_plan(self.suite, infos)
        self.last_plan = suite_plan
        for entry in suite_plan.plan.entries:
            audit.record(ClearanceDecision(**entry.as_record()))  # type: ignore[arg-type]
        refusal = ceiling_refusal(self.suite, suite_plan.plan)
        if refusal is not None:
            audit.record(Refusal(reason="standalone_ceiling"))
            raise refusal
        if suite_plan.plan.violations:
            audit.record(Refusal(reason="clearance_plan", count=len(suite_plan.plan.violations)))
            raise ClearancePlanError(suite_plan.plan.violations)
        return suite_plan

    def _load(self, authority: SidecarClient, audit: AuditLog) -> list[SecureDataFrame]:
        datasource = open_datasource(self.suite.settings.datasource)
        datasource.preflight()
        chunks: list[SecureDataFrame] = []
        remaining = self.options.head
        for chunk in datasource.load_chunks(authority, self.suite.settings.defaults.chunk_rows):
            if not chunks and not checks_declared_columns(self.suite):
                # No declared columns to check the templates against: the header is the first
                # thing read, and is checked before another chunk is read or a model called.
                check_header(self.suite, [str(column) for column in chunk.data.columns])
            kept = chunk
            if remaining is not None and chunk.shape[0] > remaining:
                kept = chunk.with_new_data(chunk.data.head(remaining))
            chunks.append(kept)
            audit.record(
                FrameGranted(
                    chunk=len(chunks) - 1,
                    rows=chunk.shape[0],
                    level=chunk.security_level.name,
                    audit_id=chunk.certificate.audit_id,
                )
            )
            if remaining is not None:
                remaining -= kept.shape[0]
                if remaining <= 0:
                    break
        return chunks

    def _write_reports(
        self,
        context: RunContext,
        experiments: Sequence[ExperimentReport],
        comparisons: Sequence[ComparisonReport],
        status: RunStatus,
    ) -> list[str]:
        """The report steps, last: each sees every experiment and comparison."""
        if not context.plan.reports:
            return []
        settings = self.suite.settings
        context.audit.flush()
        # One report for every sink, so all of them show the same run: the same time, and the
        # outputs written before any report.
        report = SuiteReport(
            suite=settings.suite.name,
            description=settings.suite.description,
            run_id=self.run_id,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            experiments=tuple(experiments),
            comparisons=tuple(comparisons),
            plan=context.plan.plan,
            settings=self.suite.recordable_settings(),
            plugins=tuple(
                PluginRecord(
                    instance=name,
                    plugin=info.name,
                    kind=info.kind.value,
                    version=info.version,
                    parameters=info.parameters or {},
                )
                for name, info in sorted(context.infos.items())
            ),
            artifacts=tuple(context.manifest.artifacts),
            status=status,
            audit_log=context.audit.path,
        )
        return [
            context.outputs.write_report(step, context.report_sinks[step.sink], report).path.name
            for step in context.plan.reports
        ]


def _judge_pairs(
    context: RunContext, results: Mapping[str, SecureDataFrame]
) -> list[PairwiseResult]:
    """The pairwise judges: each variant against the baseline, then the judge's sinks."""
    judged = []
    for steps in context.plan.pairwise:
        calls = JudgeCalls(
            context.suite,
            steps.judge.settings,
            name=steps.judge.judge,
            table="pairwise_judges",
            experiment=next(e for e in context.suite.experiments if e.name == steps.variant),
            component=steps.judge.component,
            audit=context.audit,
            cache_dir=context.cache_dir,
        )
        judged.append(
            run_pairwise(context.suite, steps, results, calls=calls, outputs=context.outputs)
        )
    return judged


def _compare(
    context: RunContext, results: Mapping[str, SecureDataFrame]
) -> tuple[list[str], list[ComparisonReport]]:
    """The comparison steps: each variant against the baseline, then the comparison's sinks."""
    written: list[str] = []
    compared_all: list[ComparisonReport] = []
    for steps in context.plan.comparisons:
        base = results[steps.baseline]
        other = results[steps.variant]
        result = steps.plugin.run(
            context.runtime, [base, other], f"{steps.comparison}:{steps.variant}"
        )
        if not result.produced:
            continue
        compared = result.produced[0]
        compared_all.append(
            ComparisonReport(steps.comparison, steps.baseline, steps.variant, compared)
        )
        for sink in steps.sinks:
            stem = f"compare__{steps.comparison}__{steps.variant}"
            written.append(context.outputs.write_frames(sink, stem, [compared]).path.name)
    return written, compared_all


def _concat(frames: Sequence[SecureDataFrame]) -> SecureDataFrame:
    if len(frames) == 1:
        return frames[0]
    return SecureDataFrame.derive_from(
        frames, pd.concat([f.data for f in frames], ignore_index=True)
    )
