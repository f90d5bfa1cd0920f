"""Run a validated suite: plan, load, ask the model, run plugins in workers, write, audit.

Order of a run (each step fails closed):
1. plugins are described and their parameters validated in a catalog worker (no data);
2. the clearance plan is built and every violation reported — before the datasource is read
   and before any model call;
3. the datasource mints origin frames through the daemon, in chunks;
4. per experiment, every chunk's rows are verified against the model's clearance and sent
   through the LLM stage; finished answers are checkpointed (MAC'd by the daemon); each
   completed chunk becomes a derived frame and goes through the row plugins in workers;
5. aggregators, sinks, then baseline comparisons;
6. suite-level reports and bundles, each seeing every experiment and comparison; the manifest
   says ``complete`` last.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pandas as pd

from elspeth.config import BudgetSettings, Experiment, SettingsError, Suite
from elspeth.datasources import open_datasource
from elspeth.errors import ConfigurationError, ElspethError
from elspeth.llm import (
    EARLY_STOP,
    Budget,
    LLMStage,
    Outcome,
    PricingTable,
    PromptPack,
    RateLimiter,
    ResponseCache,
    RetryPolicy,
    RowResult,
    create_client,
)
from elspeth.orchestrator import (
    ErrorPolicy,
    PluginInfo,
    PluginRuntime,
    RuntimeConfig,
    RuntimeLevelMismatchError,
    SpawnMode,
)
from elspeth.outcome import ExitCode, RunStatus
from elspeth.plugins import PluginKind
from elspeth.security import ClearancePlan, ClearancePlanError, SecureDataFrame, SecurityLevel
from elspeth.sidecar import SidecarClient, default_state_dir
from elspeth.sidecar._standalone import owned_temporary_directory
from elspeth.sinks import (
    ComparisonReport,
    ExperimentReport,
    PluginRecord,
    ReportSink,
    RunManifest,
    SinkError,
    SuiteReport,
    open_sink,
)
from elspeth.suite._audit import AuditLog
from elspeth.suite._authority import open_authority
from elspeth.suite._checkpoint import Answer, CheckpointWriter, read_checkpoint
from elspeth.suite._outcome import (
    ErrorTally,
    ErrorToleranceError,
    RunOutcome,
    RunStoppedError,
    describe_os_error,
    outcome_of,
)
from elspeth.suite._plan import (
    SuitePlan,
    build_suite_plan,
    comparison_component,
    llm_component,
    plugin_component,
)
from elspeth.suite._progress import Progress
from elspeth.suite._reports import open_report_sink
from elspeth.suite._validate import (
    CATALOG_WORKER,
    NoAuthority,
    ceiling_refusal,
    check_suite,
    checks_declared_columns,
    is_priced,
    plugin_problems,
    prompt_pack,
    template_problems,
)

log = logging.getLogger("elspeth.suite")

ROW_COLUMN = "_row"
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


@dataclass
class ExperimentSummary:
    name: str
    rows: int = 0
    answers: int = 0
    errors: int = 0
    tally: ErrorTally = field(default_factory=ErrorTally)
    cached: int = 0
    resumed: int = 0
    retries: int = 0
    cost: Decimal = Decimal(0)
    cost_unknown: bool = False
    """The model has no price: ``cost`` (0) means nothing, and the summary's cost is unknown
    (``None`` in :meth:`as_dict` and :attr:`known_cost`), never 0."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    partial: bool = False
    stop_reason: str | None = None
    stopped_by: str | None = None
    """What stopped the experiment: ``"experiment budget"``, ``"suite budget"`` or
    ``"early stop"``; None when it ran through."""
    early_stopped: bool = False
    rows_loaded: int = 0
    """Input rows loaded; ``rows`` is what the results files hold (finished chunks x repeats)."""
    outputs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in self.__dict__.items() if k not in ("tally", "cost_unknown")}
        return {**fields, **self.tally.as_dict(), "cost": _cost_text(self.known_cost)}

    @property
    def known_cost(self) -> Decimal | None:
        """What the experiment cost; ``None`` when that is unknown (its model has no price)."""
        return None if self.cost_unknown else self.cost


@dataclass
class RunSummary:
    """What the run did and how it ended; ``error`` is what ended it, if anything did."""

    run_id: str
    run_dir: Path
    outcome: RunOutcome
    experiments: list[ExperimentSummary]
    comparisons: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    error: BaseException | None = None
    manifest_written: bool = True
    budget: dict[str, Any] = field(default_factory=dict)
    """The suite budget's limits and what the run used of it, and which budget stopped it."""

    @property
    def status(self) -> RunStatus:
        return self.outcome.status

    @property
    def exit_code(self) -> ExitCode:
        return self.outcome.exit_code

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            **self.outcome.as_dict(),
            "experiments": [e.as_dict() for e in self.experiments],
            "budget": self.budget,
            "comparisons": self.comparisons,
            "reports": self.reports,
        }


@dataclass(frozen=True)
class RunOptions:
    output_dir: Path
    head: int | None = None
    resume: str | None = None
    state_dir: Path | None = None


def describe_plugins(runtime: PluginRuntime, suite: Suite) -> dict[str, PluginInfo]:
    """Every plugin instance's declaration, its parameters validated (in a worker, no data);
    every problem in one :class:`~elspeth.config.SettingsError`."""
    infos, problems = plugin_problems(runtime, suite)
    if problems:
        raise SettingsError(problems)
    return infos


def check_templates(suite: Suite) -> None:
    """Template fields against the declared columns, before any data is read. Without declared
    columns (or with ``extra_columns: keep``) the run checks the header instead
    (:func:`check_header`)."""
    if not checks_declared_columns(suite):
        return
    columns = list(suite.settings.datasource.columns or {})
    problems = template_problems(suite, columns, reserved=(ROW_COLUMN,))
    if problems:
        raise SettingsError(problems)


def check_header(suite: Suite, columns: Sequence[str]) -> None:
    """Template fields against the columns the data has (its header, the first thing a run
    reads), before any model call; a :class:`~elspeth.config.SettingsError` names the
    template, the field and the columns there are."""
    problems = template_problems(suite, columns, reserved=(ROW_COLUMN,), header=True)
    if problems:
        raise SettingsError(problems)


def runtime_config(suite: Suite, log_dir: Path) -> RuntimeConfig:
    settings = suite.settings
    workers = settings.workers
    policies = {
        plugin.plugin: ErrorPolicy.SKIP if plugin.on_error == "skip" else ErrorPolicy.FAIL
        for plugin in settings.plugins.values()
    }
    from elspeth.orchestrator import WorkerLimits

    names = ("memory_limit_bytes", "cpu_limit_seconds", "file_size_limit_bytes")
    own: dict[str, dict[str, int]] = {}
    for plugin in settings.plugins.values():
        for name in names:
            value = getattr(plugin, name)
            if value is not None:
                # Instances of one plugin share its workers: the strictest value wins.
                chosen = own.setdefault(plugin.plugin, {})
                chosen[name] = min(value, chosen.get(name, value))
    limits = {
        plugin: WorkerLimits(**{name: chosen.get(name, getattr(workers, name)) for name in names})
        for plugin, chosen in own.items()
    }
    extra: dict[str, Any] = {}
    if workers.scratch_root is not None:
        extra["scratch_root"] = workers.scratch_root
    return RuntimeConfig(
        log_dir=log_dir,
        mode=SpawnMode.STANDALONE if settings.sidecar.mode == "standalone" else SpawnMode.SUDO,
        sudo=str(workers.sudo),
        worker_user=workers.user,
        pool_size=workers.pool_size,
        call_timeout=workers.call_timeout_seconds,
        plugin_dirs=tuple(p.resolve() for p in settings.plugin_dirs),
        error_policies=policies,
        allow_partial_sandbox=workers.allow_partial_sandbox,
        max_payload_bytes=workers.max_payload_bytes,
        memory_limit_bytes=workers.memory_limit_bytes,
        cpu_limit_seconds=workers.cpu_limit_seconds,
        file_size_limit_bytes=workers.file_size_limit_bytes,
        plugin_limits=limits,
        **extra,
    )


def _check_resumable(run_id: str, output_dir: Path) -> None:
    if not RUN_ID.fullmatch(run_id):
        raise ConfigurationError(
            f"--resume {run_id!r} is not a run id (like 20261128T101500Z-3fa2c1)"
        )
    manifest = output_dir / run_id / "manifest.json"
    if not manifest.exists():
        raise ConfigurationError(f"cannot resume: no run {run_id!r} in {output_dir}")
    status = json.loads(manifest.read_text("utf-8")).get("status")
    if status in {s.value for s in RunStatus if s.finished_whole}:
        raise ConfigurationError(f"cannot resume: run {run_id!r} is already {status}")


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class _Context:
    """What every step of one run uses."""

    authority: SidecarClient
    runtime: PluginRuntime
    suite_plan: SuitePlan
    infos: Mapping[str, PluginInfo]
    manifest: RunManifest
    audit: AuditLog
    report_sinks: Mapping[str, ReportSink]

    @property
    def plan(self) -> ClearancePlan:
        return self.suite_plan.plan


class SuiteRunner:
    """Runs one suite once; see the module docstring for the order of events."""

    def __init__(self, suite: Suite, options: RunOptions) -> None:
        self.suite = suite
        self.options = options
        self.progress: Progress | None = None
        self.last_plan: SuitePlan | None = None
        if options.resume is not None:
            _check_resumable(options.resume, options.output_dir)
        self.run_id = options.resume or new_run_id()
        self.run_dir = options.output_dir / self.run_id
        self._suite_used = _Used()  # against the suite budget, by the experiments so far

    # -- the whole run ----------------------------------------------------------------------

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
        self.progress = progress
        os.umask(0o077)
        prepare_directory(self.options.output_dir, "output directory")
        if self.suite.settings.sidecar.mode == "standalone":
            prepare_directory(self.options.state_dir or default_state_dir(), "state directory")
        try:
            manifest = RunManifest.start(self.run_dir, self.run_id)
            audit = AuditLog(self.run_dir / "audit.jsonl", self.run_id)
        except OSError as error:
            raise SinkError(self.run_dir, describe_os_error(error)) from None
        summary = RunSummary(self.run_id, self.run_dir, _RUNNING, [])
        try:
            self._run(manifest, audit, summary)
        except (Exception, KeyboardInterrupt) as error:
            summary.error = error
            summary.outcome = outcome_of(error)
            if not isinstance(error, ElspethError | KeyboardInterrupt):
                log.debug("the run ended by %s", type(error).__name__, exc_info=error)
        summary.budget = self._budget_state(summary)
        audit.flush()
        _fail_on_audit_failure(summary, audit)
        audit.record("run_finished", **summary.outcome.as_dict())
        audit.close()
        _fail_on_audit_failure(summary, audit)
        try:
            manifest.finish(summary.status, summary.outcome.reason)
        except (OSError, SinkError) as error:
            summary.manifest_written = False
            log.error("the run's end could not be recorded in %s: %s", manifest.path, error)
        return summary

    def _run(self, manifest: RunManifest, audit: AuditLog, run: RunSummary) -> None:
        """The run's work, recording each experiment's summary in ``run`` as it ends."""
        audit.record(
            "run_started", suite=self.suite.settings.suite.name, resumed=bool(self.options.resume)
        )
        with (
            open_authority(
                self.suite.settings.sidecar, state_dir=self.options.state_dir
            ) as authority,
            PluginRuntime(
                authority, runtime_config(self.suite, self.run_dir / "worker-logs")
            ) as runtime,
        ):
            audit.record("authority_ready", boot_id=authority.boot_id.hex(), mode=authority.mode)
            infos = check_suite(runtime, self.suite)
            report_sinks = self._open_report_sinks()
            suite_plan = self._require_plan(infos, audit)
            chunks = self._load(authority, audit)
            context = _Context(authority, runtime, suite_plan, infos, manifest, audit, report_sinks)
            experiments: list[ExperimentReport] = []
            for experiment in self.suite.experiments:
                summary, done = self._run_experiment(context, experiment, chunks)
                run.experiments.append(summary)
                experiments.append(done)
                _check_experiment(experiment, summary)
            outcome = _finished_outcome(run.experiments)
            run.comparisons, compared = self._compare(
                context, {e.name: e.results for e in experiments}
            )
            run.reports = self._write_reports(context, experiments, compared, outcome.status)
            run.outcome = outcome

    def _budget_state(self, summary: RunSummary) -> dict[str, Any]:
        limits = self.suite.settings.budget
        stopped_by = next(
            (e.stopped_by for e in summary.experiments if e.stopped_by in _BUDGET_SCOPES), None
        )
        return {
            "suite": {
                "max_cost": _cost_text(limits.max_cost),
                "max_rows": limits.max_rows,
                "cost_used": str(self._suite_used.cost),
                "rows_used": self._suite_used.rows,
            },
            "stopped_by": stopped_by,
        }

    def _open_report_sinks(self) -> dict[str, ReportSink]:
        """Every suite-level sink, opened before any data is read: a bundle's signing key is
        loaded and checked here, not after the model has been paid for."""
        settings = self.suite.settings
        return {name: open_report_sink(self.suite.report_sink(name)) for name in settings.reports}

    def _require_plan(self, infos: Mapping[str, PluginInfo], audit: AuditLog) -> SuitePlan:
        suite_plan = build_suite_plan(self.suite, infos)
        self.last_plan = suite_plan
        for entry in suite_plan.plan.entries:
            audit.record("clearance_decision", **entry.as_record())
        refusal = ceiling_refusal(self.suite, suite_plan.plan)
        if refusal is not None:
            audit.record("refusal", reason="standalone_ceiling")
            raise refusal
        if suite_plan.plan.violations:
            audit.record("refusal", reason="clearance_plan", count=len(suite_plan.plan.violations))
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
                "frame_granted",
                chunk=len(chunks) - 1,
                rows=chunk.shape[0],
                level=chunk.security_level.name,
                audit_id=chunk.certificate.audit_id,
            )
            if remaining is not None:
                remaining -= kept.shape[0]
                if remaining <= 0:
                    break
        return chunks

    # -- one experiment ---------------------------------------------------------------------

    def _run_experiment(
        self, context: _Context, experiment: Experiment, chunks: Sequence[SecureDataFrame]
    ) -> tuple[ExperimentSummary, ExperimentReport]:
        assert self.progress is not None
        checkpoint = self.run_dir / f"checkpoint-{experiment.name}.jsonl"
        fingerprint = self._fingerprint(experiment, chunks)
        restored = {
            answer.key: answer
            for answer in read_checkpoint(checkpoint, fingerprint, context.authority)
        }
        if restored:
            context.audit.record("resumed", experiment=experiment.name, answers=len(restored))
        pack = prompt_pack(self.suite, experiment)
        # What the checkpoint already used: its answers' cost, and the rows it has whole (a row
        # with answers missing starts again, and the stage counts it then).
        spent = sum((a.cost for a in restored.values()), Decimal(0))
        per_row = collections.Counter(key[0] for key in restored)
        whole_rows = sum(n >= len(pack.criteria) * experiment.repeats for n in per_row.values())
        used = self._suite_used
        budgets = (
            _budget(experiment.budget, EXPERIMENT_BUDGET, spent, whole_rows),
            _budget(
                self.suite.settings.budget,
                SUITE_BUDGET,
                used.cost + spent,
                used.rows + whole_rows,
            ),
        )
        stage = self._stage(
            experiment, pack, self.suite.settings.models[experiment.model].options(), budgets
        )
        writer = CheckpointWriter(checkpoint, fingerprint, context.authority)
        run = _ExperimentRun(
            self,
            context,
            experiment,
            chunks=chunks,
            criteria=pack.criteria,
            restored=restored,
            writer=writer,
        )
        try:
            stage_summary = stage.run_sync(
                run.rows(),
                level=context.plan.incoming_of(llm_component(experiment.name)),
                on_result=run.on_result,
                done=set(restored),
                should_stop=run.stop.is_set,
            )
            frames = run.finished_frames()
        finally:
            run.close()
        used.cost += stage_summary.cost + spent
        used.rows += stage_summary.rows_started + whole_rows
        early = run.stop.is_set()
        summary = ExperimentSummary(
            experiment.name,
            # What the results files hold: the finished chunks' rows (x repeats); answers and
            # errors count every answer this run has, also those of unfinished chunks.
            rows=sum(frame.shape[0] for frame in frames),
            rows_loaded=run.offsets[-1],
            answers=stage_summary.ok + len(restored),
            errors=stage_summary.errors,
            tally=run.tally,
            cached=stage_summary.cached,
            resumed=len(restored),
            retries=stage_summary.retries,
            cost=stage_summary.cost + spent,
            cost_unknown=not is_priced(self.suite, experiment),
            prompt_tokens=stage_summary.prompt_tokens,
            completion_tokens=stage_summary.completion_tokens,
            partial=stage_summary.partial,
            stop_reason=stage_summary.stop_reason
            or ("early stop requested by a row plugin" if early else None),
            stopped_by=stage_summary.stopped_by or (EARLY_STOP if early else None),
            early_stopped=early,
        )
        done_record = stage_summary.as_dict()
        if summary.cost_unknown:
            done_record["cost"] = None
        context.audit.record("llm_stage_done", experiment=experiment.name, **done_record)
        aggregates: dict[str, SecureDataFrame] = {}
        if frames:
            # A budget stop still writes the finished chunks; the manifest then says partial.
            aggregates = self._aggregate_and_write(context, experiment, frames, summary)
        return summary, ExperimentReport(
            name=experiment.name,
            baseline=experiment.baseline,
            model=experiment.model,
            prompt_pack=experiment.prompt_pack,
            criteria=tuple(pack.criteria),
            summary=summary.as_dict(),
            results=tuple(frames),
            aggregates=aggregates,
        )

    def _stage(
        self,
        experiment: Experiment,
        pack: PromptPack,
        options: Mapping[str, Any],
        budgets: Sequence[Budget],
    ) -> LLMStage:
        settings = self.suite.settings
        model = settings.models[experiment.model]
        client_options = dict(options)
        if experiment.parameters and model.type != "mock":
            client_options["parameters"] = dict(experiment.parameters)
        client = create_client(model.type, client_options)
        limits = experiment.rate_limits
        limiter = (
            RateLimiter(
                requests_per_minute=limits.requests_per_minute,
                tokens_per_minute=limits.tokens_per_minute,
            )
            if limits.requests_per_minute or limits.tokens_per_minute
            else None
        )
        cache = (
            ResponseCache(self.options.output_dir / ".cache") if settings.defaults.cache else None
        )
        pricing = PricingTable.from_mapping(
            {name: price.model_dump() for name, price in settings.pricing.items()}
        )
        return LLMStage(
            client,
            pack,
            concurrency=experiment.concurrency,
            rate_limiter=limiter,
            retry_policy=RetryPolicy(max_retries=experiment.max_retries),
            cache=cache,
            pricing=pricing,
            budget=budgets,
            repeats=experiment.repeats,
        )

    def _row_stages(
        self,
        context: _Context,
        experiment: Experiment,
        chunk: _Chunk,
        criteria: Sequence[str],
        stop: threading.Event,
    ) -> SecureDataFrame:
        plan, audit, index = context.plan, context.audit, chunk.index
        answered = _with_answers(
            chunk.frame.data, chunk.results, criteria, experiment.repeats, chunk.first_row
        )
        if not is_priced(self.suite, experiment):  # unknown, never 0
            for criterion in criteria:
                answered[f"{criterion}_cost"] = float("nan")
        frame = chunk.frame.with_new_data(answered)
        self._expect_level(frame, plan.level_of(llm_component(experiment.name)))
        settings = self.suite.settings
        for plugin in experiment.row_plugins:
            component = plugin_component(experiment.name, plugin)
            instance = settings.plugins[plugin]
            result = context.runtime.run(
                instance.plugin,
                instance.params,
                [frame],
                chunk_id=f"{experiment.name}:{index}",
                plan_level=plan.incoming_of(component),
            )
            audit.record(
                "plugin_step",
                experiment=experiment.name,
                chunk=index,
                plugin=plugin,
                skipped=result.skipped,
            )
            frame = result.frames[0]
            if not result.skipped:
                self._expect_level(frame, plan.level_of(component))
            if context.infos[plugin].kind is PluginKind.EARLY_STOP and _early_stop(frame):
                audit.record("early_stop", experiment=experiment.name, chunk=index, plugin=plugin)
                stop.set()
        return frame

    def _aggregate_and_write(
        self,
        context: _Context,
        experiment: Experiment,
        frames: Sequence[SecureDataFrame],
        summary: ExperimentSummary,
    ) -> dict[str, SecureDataFrame]:
        settings = self.suite.settings
        plan, manifest, audit = context.plan, context.manifest, context.audit
        outputs: list[tuple[str, list[SecureDataFrame]]] = [("results", list(frames))]
        aggregates: dict[str, SecureDataFrame] = {}
        for plugin in experiment.aggregators:
            component = plugin_component(experiment.name, plugin)
            instance = settings.plugins[plugin]
            result = context.runtime.run(
                instance.plugin,
                instance.params,
                frames,
                chunk_id=f"{experiment.name}:all",
                plan_level=plan.incoming_of(component),
            )
            if result.produced:
                aggregate = result.produced[0]
                self._expect_level(aggregate, plan.level_of(component))
                outputs.append((plugin, [aggregate]))
                aggregates[plugin] = aggregate
        for sink_name in experiment.sinks:
            sink = open_sink(self.suite.frame_sink(sink_name))
            for label, output in outputs:
                path = manifest.path_for(f"{experiment.name}__{label}__{sink_name}{sink.suffix}")
                artifact = sink.write_chunks(output, path)
                manifest.add(artifact)
                summary.outputs.append(path.name)
                audit.record(
                    "sink_written",
                    experiment=experiment.name,
                    sink=sink_name,
                    output=path.name,
                    level=artifact.level.name,
                    rows=artifact.rows,
                    seal_audit_ids=list(artifact.seal_audit_ids),
                )
        return aggregates

    def _compare(
        self, context: _Context, results: Mapping[str, Sequence[SecureDataFrame]]
    ) -> tuple[list[str], list[ComparisonReport]]:
        settings = self.suite.settings
        plan, manifest, audit = context.plan, context.manifest, context.audit
        baseline = self.suite.baseline.name
        written: list[str] = []
        compared_all: list[ComparisonReport] = []
        for comparison in settings.defaults.comparisons:
            instance = settings.plugins[comparison]
            for variant in self.suite.experiments:
                if variant.baseline:
                    continue
                component = comparison_component(comparison, variant.name)
                base = _concat(results[baseline])
                other = _concat(results[variant.name])
                result = context.runtime.run(
                    instance.plugin,
                    instance.params,
                    [base, other],
                    chunk_id=f"{comparison}:{variant.name}",
                    plan_level=plan.incoming_of(component),
                )
                if not result.produced:
                    continue
                compared = result.produced[0]
                self._expect_level(compared, plan.level_of(component))
                compared_all.append(ComparisonReport(comparison, baseline, variant.name, compared))
                for sink_name in self.suite.comparison_sinks:
                    sink = open_sink(self.suite.frame_sink(sink_name))
                    path = manifest.path_for(
                        f"compare__{comparison}__{variant.name}__{sink_name}{sink.suffix}"
                    )
                    manifest.add(sink.write(compared, path))
                    written.append(path.name)
                    audit.record(
                        "sink_written",
                        comparison=comparison,
                        variant=variant.name,
                        sink=sink_name,
                        output=path.name,
                    )
        return written, compared_all

    def _write_reports(
        self,
        context: _Context,
        experiments: Sequence[ExperimentReport],
        comparisons: Sequence[ComparisonReport],
        status: RunStatus,
    ) -> list[str]:
        """The suite-level sinks, last: each sees every experiment and comparison."""
        settings = self.suite.settings
        if not settings.reports:
            return []
        manifest, audit = context.manifest, context.audit
        audit.flush()
        # One report for every sink, so all of them show the same run: the same time, and the
        # outputs written before any report.
        report = SuiteReport(
            suite=settings.suite.name,
            description=settings.suite.description,
            run_id=self.run_id,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            experiments=tuple(experiments),
            comparisons=tuple(comparisons),
            plan=context.plan,
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
            artifacts=tuple(manifest.artifacts),
            status=status,
            audit_log=audit.path,
        )
        written: list[str] = []
        for sink_name, sink in context.report_sinks.items():
            path = manifest.path_for(sink.file_name(sink_name, report.level))
            artifact = sink.write(report, path)
            manifest.add(artifact)
            written.append(path.name)
            audit.record(
                "report_written",
                sink=sink_name,
                output=path.name,
                format=artifact.format,
                level=artifact.level.name,
                seal_audit_ids=list(artifact.seal_audit_ids),
            )
        return written

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _expect_level(frame: SecureDataFrame, planned: SecurityLevel) -> None:
        if frame.security_level != planned:
            raise RuntimeLevelMismatchError(
                f"frame {frame.frame_id} is {frame.security_level} but the plan computed "
                f"{planned}; this is an internal error, the run stops"
            )

    def _fingerprint(self, experiment: Experiment, chunks: Sequence[SecureDataFrame]) -> str:
        settings = self.suite.settings
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


class _ExperimentRun:
    """The moving parts of one experiment's LLM stage: which answers each chunk has, and the
    background thread that turns a chunk with every answer into a frame and runs its row
    plugins while the model answers later chunks."""

    def __init__(
        self,
        runner: SuiteRunner,
        context: _Context,
        experiment: Experiment,
        *,
        chunks: Sequence[SecureDataFrame],
        criteria: Sequence[str],
        restored: Mapping[tuple[int, str, int], Answer],
        writer: CheckpointWriter,
    ) -> None:
        self.runner = runner
        self.context = context
        self.experiment = experiment
        self.chunks = chunks
        self.criteria = criteria
        self.writer = writer
        self.offsets = _offsets(chunks)
        self.stop = threading.Event()
        self.tally = ErrorTally()
        self._clearance = runner.suite.settings.models[experiment.model].clearance
        self._priced = is_priced(runner.suite, experiment)
        per_row = len(criteria) * experiment.repeats
        self._expected = [
            (self.offsets[i + 1] - self.offsets[i]) * per_row for i in range(len(chunks))
        ]
        self._answers: list[dict[tuple[int, str, int], RowResult | Answer]] = [{} for _ in chunks]
        for key, answer in restored.items():
            self._answers[_chunk_of(self.offsets, key[0])][key] = answer
            self.tally.attempted.add(key[0])
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="row-stages")
        self._futures: dict[int, concurrent.futures.Future[SecureDataFrame]] = {}
        self._failure: BaseException | None = None
        assert runner.progress is not None
        self._task = runner.progress.start(experiment.name, self.offsets[-1] * per_row)
        self._task.advance(len(restored))
        for index in range(len(chunks)):
            if len(self._answers[index]) >= self._expected[index]:
                self._finish_chunk(index)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Rows for the model, chunk by chunk, each chunk's seal checked first."""
        audit = self.context.audit
        for index, chunk in enumerate(self.chunks):
            if self.stop.is_set():
                return
            audit_id = chunk.verify_for(self._clearance)
            audit.record(
                "seal_verified",
                experiment=self.experiment.name,
                chunk=index,
                component="llm",
                audit_id=audit_id,
            )
            ordinals = range(self.offsets[index], self.offsets[index + 1])
            records = chunk.data.to_dict(orient="records")
            for ordinal, record in zip(ordinals, records, strict=True):
                yield {**{str(k): v for k, v in record.items()}, ROW_COLUMN: ordinal}

    def on_result(self, result: RowResult) -> None:
        record = result.audit_record()
        if not self._priced:  # no price: the cost is unknown, never 0
            record["cost"] = None
        self.context.audit.record("llm_result", experiment=self.experiment.name, **record)
        self.tally.add(result)
        if result.outcome is Outcome.OK and result.text is not None:
            self.writer.append(
                Answer(
                    result.row,
                    result.criterion,
                    result.repeat,
                    result.text,
                    result.prompt_tokens,
                    result.completion_tokens,
                    result.cost,
                )
            )
        self._task.advance(1, cost=result.cost, error=result.outcome is not Outcome.OK)
        self._raise_row_stage_failure()
        index = _chunk_of(self.offsets, result.row)
        with self._lock:
            self._answers[index][result.key] = result
            complete = len(self._answers[index]) >= self._expected[index]
        if complete:
            self._finish_chunk(index)

    def finished_frames(self) -> list[SecureDataFrame]:
        return [self._futures[index].result() for index in sorted(self._futures)]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._task.close()
        self.writer.close()

    def _finish_chunk(self, index: int) -> None:
        chunk = _Chunk(index, self.offsets[index], self.chunks[index], self._answers[index])
        future = self._pool.submit(
            self.runner._row_stages,
            self.context,
            self.experiment,
            chunk,
            self.criteria,
            self.stop,
        )
        future.add_done_callback(self._note_failure)
        self._futures[index] = future

    def _note_failure(self, future: concurrent.futures.Future[SecureDataFrame]) -> None:
        if not future.cancelled() and future.exception() is not None and self._failure is None:
            self._failure = future.exception()

    def _raise_row_stage_failure(self) -> None:
        """Stop asking the model once a row stage failed: the run fails anyway."""
        if self._failure is not None:
            raise self._failure


EXPERIMENT_BUDGET: Final = "experiment budget"
SUITE_BUDGET: Final = "suite budget"
_BUDGET_SCOPES: Final = (EXPERIMENT_BUDGET, SUITE_BUDGET)


@dataclass
class _Used:
    """What the experiments so far used against the suite budget (their checkpoints included)."""

    cost: Decimal = Decimal(0)
    rows: int = 0


def _budget(settings: BudgetSettings, scope: str, spent: Decimal, rows: int) -> Budget:
    """The stage's form of a budget, with what earlier work already used against it."""
    return Budget(
        max_cost=settings.max_cost,
        max_rows=settings.max_rows,
        scope=scope,
        spent=spent,
        rows_used=rows,
    )


@dataclass(frozen=True)
class _Chunk:
    """One chunk of one experiment: its origin frame and every answer for its rows."""

    index: int
    first_row: int
    frame: SecureDataFrame
    results: Mapping[tuple[int, str, int], RowResult | Answer]


def _offsets(chunks: Sequence[SecureDataFrame]) -> list[int]:
    offsets = [0]
    for chunk in chunks:
        offsets.append(offsets[-1] + chunk.shape[0])
    return offsets


def _chunk_of(offsets: Sequence[int], row: int) -> int:
    """The chunk holding ``row``; ``offsets`` are the chunks' first rows and the total."""
    if not 0 <= row < offsets[-1]:
        raise IndexError(f"row {row} is outside the loaded data")
    return bisect.bisect_right(offsets, row) - 1


def _with_answers(
    data: pd.DataFrame,
    results: Mapping[tuple[int, str, int], RowResult | Answer],
    criteria: Sequence[str],
    repeats: int,
    first_row: int,
) -> pd.DataFrame:
    """The chunk's rows plus ``_row`` and, per criterion, the answer and what it cost:
    ``<c>_response``, ``<c>_outcome``, ``<c>_prompt_tokens``, ``<c>_completion_tokens``,
    ``<c>_cost`` and ``<c>_latency_ms`` (unknown for an answer restored from a checkpoint)."""
    frame = data.reset_index(drop=True)
    ordinals = list(range(first_row, first_row + len(frame)))
    pieces = []
    for repeat in range(repeats):
        block = frame.copy()
        block.insert(0, ROW_COLUMN, ordinals)
        if repeats > 1:
            block.insert(1, "_repeat", repeat)
        for criterion in criteria:
            answers = [_answer_columns(results.get((row, criterion, repeat))) for row in ordinals]
            texts, outcomes, prompt, completion, cost, latency = zip(*answers, strict=True)
            block[f"{criterion}_response"] = pd.Series(texts, dtype="str")
            block[f"{criterion}_outcome"] = list(outcomes)
            block[f"{criterion}_prompt_tokens"] = pd.array(prompt, dtype="Int64")
            block[f"{criterion}_completion_tokens"] = pd.array(completion, dtype="Int64")
            block[f"{criterion}_cost"] = pd.array(cost, dtype="float64")
            block[f"{criterion}_latency_ms"] = pd.array(latency, dtype="float64")
        pieces.append(block)
    return pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]


def _answer_columns(
    result: RowResult | Answer | None,
) -> tuple[str | None, str, int | None, int | None, float | None, float | None]:
    """(text, outcome, prompt tokens, completion tokens, cost, latency in ms) of one answer.
    Tokens belong to an answer; an error still cost what it cost and took its time."""
    if result is None:
        return (None, Outcome.ERROR.value, None, None, None, None)
    tokens: tuple[int | None, int | None] = (result.prompt_tokens, result.completion_tokens)
    if isinstance(result, Answer):  # restored from a checkpoint: its latency is not kept
        return (result.text, Outcome.OK.value, *tokens, float(result.cost), None)
    answered = result.outcome is Outcome.OK
    if not answered:
        tokens = (None, None)
    text = result.text if answered else None
    return (text, result.outcome.value, *tokens, float(result.cost), result.latency_s * 1000)


def _early_stop(frame: SecureDataFrame) -> bool:
    data = frame.data
    return "_early_stop" in data.columns and bool(data["_early_stop"].fillna(False).any())


def _concat(frames: Sequence[SecureDataFrame]) -> SecureDataFrame:
    if len(frames) == 1:
        return frames[0]
    return SecureDataFrame.derive_from(
        frames, pd.concat([f.data for f in frames], ignore_index=True)
    )


_RUNNING = RunOutcome(RunStatus.RUNNING, ExitCode.RUN_FAILED, "the run did not finish")


def prepare_directory(directory: Path, what: str) -> None:
    """Create ``directory`` (0700) if it is missing; refuse one this user cannot write into,
    naming the path and the reason, before anything is started."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise ConfigurationError(
            f"{what} {directory}: cannot be created ({error.strerror or error})"
        ) from None
    if not directory.is_dir():
        raise ConfigurationError(f"{what} {directory}: is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigurationError(f"{what} {directory}: is not writable by this user")


def _fail_on_audit_failure(summary: RunSummary, audit: AuditLog) -> None:
    """A run whose audit log could not be written is not complete, whatever else it did."""
    if audit.failure is not None and summary.status.finished_whole:
        reason = f"the audit log could not be written: {describe_os_error(audit.failure)}"
        summary.outcome = RunOutcome(RunStatus.FAILED, ExitCode.RUN_FAILED, reason)


def _check_experiment(experiment: Experiment, summary: ExperimentSummary) -> None:
    """Stop the run after an experiment that a budget stopped or whose errors are above its
    tolerance: later experiments would be paid for and could not be compared."""
    if summary.partial:
        raise RunStoppedError(f"experiment {experiment.name} stopped: {summary.stop_reason}")
    if summary.tally.exceeds(experiment.max_error_rate):
        raise ErrorToleranceError(
            f"experiment {experiment.name}: {summary.tally.describe()} "
            f"(max_error_rate is {experiment.max_error_rate:g})"
        )


def _finished_outcome(experiments: Sequence[ExperimentSummary]) -> RunOutcome:
    """Every experiment ran through: complete, or complete with errors within tolerance."""
    erred = any(e.tally.rows for e in experiments)
    stopped_early = [e.name for e in experiments if e.early_stopped]
    return RunOutcome(
        RunStatus.COMPLETE_WITH_ERRORS if erred else RunStatus.COMPLETE,
        ExitCode.OK,
        f"early stop in {', '.join(stopped_early)}" if stopped_early else None,
        early_stopped=bool(stopped_early),
    )


def _cost_text(cost: Decimal | None) -> str | None:
    """A cost for the JSON summary and reports: a decimal string, or ``None`` when unknown."""
    return None if cost is None else str(cost)
