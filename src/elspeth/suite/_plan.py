"""The suite as a program of steps; the clearance plan is computed from the same steps.

Building the plan yields, per experiment, its ordered steps (LLM → judges → row plugins →
aggregators → sinks), then the comparisons and pairwise judges and their sinks, then the
suite-level reports. Each
step carries its component id, the levels the clearance plan computed for what it receives and
what it produces, and what it runs. The runner walks these steps and nothing else: no component is
looked up by a name the plan did not hand out, and :meth:`Step.expect` is the one place a
frame's level is held against the plan's prediction.

Plugin components take the stricter of what the settings declare and what the plugin itself
declares: the lower clearance and the higher floor. The plan therefore predicts exactly the
levels the workers will produce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elspeth.config import (
    Experiment,
    JudgeSettings,
    PairwiseJudgeSettings,
    PluginSettings,
    Suite,
)
from elspeth.orchestrator import PluginInfo, PluginRuntime, RuntimeLevelMismatchError, StepResult
from elspeth.plugins import PluginKind
from elspeth.security import (
    ClearancePlan,
    ComponentSpec,
    PipelineSpec,
    PlanEntry,
    SecureDataFrame,
    SecurityLevel,
    build_clearance_plan,
    join,
)

DATASOURCE = "datasource"


@dataclass(frozen=True, slots=True)
class Step:
    """One component of the plan: its id and the levels the plan computed for it."""

    component: str
    incoming: SecurityLevel
    """The level of what reaches the component; worker pools are keyed by it."""
    produces: SecurityLevel
    """The level of what the component emits; a frame it produces must carry exactly this."""

    def expect(self, frame: SecureDataFrame) -> SecureDataFrame:
        """``frame``, if its level is the one the plan predicted; else the run stops."""
        if frame.security_level != self.produces:
            raise RuntimeLevelMismatchError(
                f"frame {frame.frame_id} is {frame.security_level} but the plan computed "
                f"{self.produces} for {self.component}; this is an internal error, the run stops"
            )
        return frame


@dataclass(frozen=True, slots=True)
class PluginStep(Step):
    """A plugin instance (settings key ``instance``) run in a worker."""

    instance: str
    settings: PluginSettings
    kind: PluginKind

    def run(
        self, runtime: PluginRuntime, frames: Sequence[SecureDataFrame], chunk_id: str
    ) -> StepResult:
        """Run the plugin over ``frames``; every frame it produced is checked against the plan."""
        result = runtime.run(
            self.settings.plugin,
            self.settings.params,
            frames,
            chunk_id=chunk_id,
            plan_level=self.incoming,
        )
        for frame in result.produced:
            self.expect(frame)
        return result


@dataclass(frozen=True, slots=True)
class JudgeStep(Step):
    """A model-graded judge (settings key ``judge``) over the answers, in the orchestrator."""

    judge: str
    settings: JudgeSettings


@dataclass(frozen=True, slots=True)
class PairwiseStep(Step):
    """A pairwise judge (``pairwise_judges`` key ``judge``) of a variant's answers against the
    baseline's, in the orchestrator."""

    judge: str
    settings: PairwiseJudgeSettings


@dataclass(frozen=True, slots=True)
class SinkStep(Step):
    """A frame sink (settings key ``sink``) that writes what its inputs produced."""

    sink: str


@dataclass(frozen=True, slots=True)
class ReportStep(Step):
    """A suite-level report sink: it sees every experiment and every comparison."""

    sink: str


@dataclass(frozen=True, slots=True)
class ExperimentSteps:
    """One experiment's program: the model's stage, then each chunk through the judges and the
    row plugins, then the aggregators over every chunk, then the sinks."""

    experiment: Experiment
    llm: Step
    judges: tuple[JudgeStep, ...]
    row_plugins: tuple[PluginStep, ...]
    aggregators: tuple[PluginStep, ...]
    sinks: tuple[SinkStep, ...]

    @property
    def rows(self) -> Step:
        """The step whose output is the experiment's result rows."""
        return (*(self.llm,), *self.judges, *self.row_plugins)[-1]


@dataclass(frozen=True, slots=True)
class ComparisonSteps:
    """One comparison of one variant against the baseline, and the sinks that write it."""

    comparison: str
    baseline: str
    variant: str
    plugin: PluginStep
    sinks: tuple[SinkStep, ...]


@dataclass(frozen=True, slots=True)
class PairwiseSteps:
    """One pairwise judge of one variant against the baseline, and the sinks that write it."""

    baseline: str
    variant: str
    judge: PairwiseStep
    sinks: tuple[SinkStep, ...]


@dataclass(frozen=True, slots=True)
class SuitePlan:
    """The clearance plan and the steps it was computed from.

    From :meth:`SuiteRunner.validate` it also says what validation had to start (``started``,
    e.g. ``("1 catalog worker (to check plugin parameters)",)``; empty when nothing was) and
    the settings' warnings (``file:line:column: key: message``, e.g. a model with no price).
    """

    plan: ClearancePlan
    load: Step
    experiments: tuple[ExperimentSteps, ...]
    comparisons: tuple[ComparisonSteps, ...]
    pairwise: tuple[PairwiseSteps, ...]
    reports: tuple[ReportStep, ...]
    started: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def started_line(self) -> str:
        """``started: 1 catalog worker (to check plugin parameters); no daemon``, or
        ``started: no worker; no daemon``."""
        parts = list(self.started) or ["no worker"]
        if not any("daemon" in part for part in self.started):
            parts.append("no daemon")
        return "started: " + "; ".join(parts)


def build_suite_plan(suite: Suite, infos: Mapping[str, PluginInfo]) -> SuitePlan:
    """``infos`` maps each plugin instance name (settings key) to its worker's description."""
    return _Planner(suite, infos).build()


@dataclass(frozen=True, slots=True)
class _Pending:
    """A step whose component is in the plan being built, waiting for the plan's levels."""

    step_type: type[Step]
    component: str
    fields: Mapping[str, Any]

    def bind(self, entries: Mapping[str, PlanEntry]) -> Any:
        entry = entries[self.component]
        return self.step_type(
            component=self.component,
            incoming=entry.incoming,
            produces=entry.outgoing,
            **self.fields,
        )


@dataclass(frozen=True, slots=True)
class _PendingExperiment:
    experiment: Experiment
    llm: _Pending
    judges: tuple[_Pending, ...]
    row_plugins: tuple[_Pending, ...]
    aggregators: tuple[_Pending, ...]
    sinks: tuple[_Pending, ...]

    @property
    def rows(self) -> str:
        return (self.llm, *self.judges, *self.row_plugins)[-1].component


class _Planner:
    """Adds component specs in dependency order, then binds each step to the plan's levels."""

    def __init__(self, suite: Suite, infos: Mapping[str, PluginInfo]) -> None:
        self.suite = suite
        self.infos = infos
        self.specs: list[ComponentSpec] = []

    def build(self) -> SuitePlan:
        settings = self.suite.settings
        load = self._add(Step, settings.datasource.component_spec(DATASOURCE))
        experiments = [self._experiment(experiment) for experiment in self.suite.experiments]
        rows_of = {pending.experiment.name: pending.rows for pending in experiments}
        comparisons = [
            (comparison, variant.name, *self._comparison(comparison, variant.name, rows_of))
            for comparison in settings.defaults.comparisons
            for variant in self.suite.experiments
            if not variant.baseline
        ]
        pairwise = [
            (variant.name, *self._pairwise(judge, variant.name, rows_of))
            for judge in settings.defaults.pairwise
            for variant in self.suite.experiments
            if not variant.baseline
        ]
        # Everything a suite-level report shows: each experiment's rows and aggregates, and
        # every comparison. A report is cleared for all of it or refused before any data is read.
        reported = [
            *(
                name
                for pending in experiments
                for name in (pending.rows, *(a.component for a in pending.aggregators))
            ),
            *(plugin.component for _, _, plugin, _ in comparisons),
            *(judge.component for _, judge, _ in pairwise),
        ]
        reports = [
            self._add(
                ReportStep,
                self.suite.report_sink(sink).component_spec(f"report:{sink}", tuple(reported)),
                sink=sink,
            )
            for sink in settings.reports
        ]
        plan = build_clearance_plan(PipelineSpec(tuple(self.specs)))
        entries = {entry.component.name: entry for entry in plan.entries}

        def bind_all(pendings: Sequence[_Pending]) -> tuple[Any, ...]:
            return tuple(pending.bind(entries) for pending in pendings)

        return SuitePlan(
            plan=plan,
            load=load.bind(entries),
            experiments=tuple(
                ExperimentSteps(
                    experiment=pending.experiment,
                    llm=pending.llm.bind(entries),
                    judges=bind_all(pending.judges),
                    row_plugins=bind_all(pending.row_plugins),
                    aggregators=bind_all(pending.aggregators),
                    sinks=bind_all(pending.sinks),
                )
                for pending in experiments
            ),
            comparisons=tuple(
                ComparisonSteps(
                    comparison=comparison,
                    baseline=self.suite.baseline.name,
                    variant=variant,
                    plugin=plugin.bind(entries),
                    sinks=bind_all(sinks),
                )
                for comparison, variant, plugin, sinks in comparisons
            ),
            pairwise=tuple(
                PairwiseSteps(
                    baseline=self.suite.baseline.name,
                    variant=variant,
                    judge=judge.bind(entries),
                    sinks=bind_all(sinks),
                )
                for variant, judge, sinks in pairwise
            ),
            reports=bind_all(reports),
        )

    def _add(self, step_type: type[Step], spec: ComponentSpec, **fields: Any) -> _Pending:
        self.specs.append(spec)
        return _Pending(step_type, spec.name, fields)

    def _plugin(self, name: str, instance: str, inputs: tuple[str, ...]) -> _Pending:
        settings = self.suite.settings.plugins[instance]
        info = self.infos[instance]
        clearance = min(settings.clearance, info.clearance, key=lambda level: level.rank)
        floors = [f for f in (settings.output_floor, info.output_floor) if f is not None]
        spec = ComponentSpec(
            name=name,
            kind=info.kind.value,
            clearance=clearance,
            inputs=inputs,
            output_floor=join(*floors) if floors else None,
        )
        return self._add(PluginStep, spec, instance=instance, settings=settings, kind=info.kind)

    def _sink(self, name: str, sink: str, inputs: tuple[str, ...]) -> _Pending:
        clearance = self.suite.settings.sinks[sink].clearance
        return self._add(SinkStep, ComponentSpec(name, "sink", clearance, inputs=inputs), sink=sink)

    def _experiment(self, experiment: Experiment) -> _PendingExperiment:
        name = experiment.name
        model = self.suite.settings.models[experiment.model]
        llm = self._add(
            Step, ComponentSpec(f"{name}/llm", "llm", model.clearance, inputs=(DATASOURCE,))
        )
        # A judge reads the answers, so it is planned like the model: cleared for the data or
        # refused before anything is read.
        chain: list[_Pending] = [llm]
        judges: list[_Pending] = []
        for judge in experiment.judges:
            settings = self.suite.settings.judges[judge]
            spec = ComponentSpec(
                f"{name}/judge:{judge}",
                "judge",
                self.suite.settings.models[settings.model].clearance,
                inputs=(chain[-1].component,),
            )
            judges.append(self._add(JudgeStep, spec, judge=judge, settings=settings))
            chain.append(judges[-1])
        row_plugins: list[_Pending] = []
        for plugin in experiment.row_plugins:
            row_plugins.append(self._plugin(f"{name}/{plugin}", plugin, (chain[-1].component,)))
            chain.append(row_plugins[-1])
        rows = chain[-1].component
        aggregators = tuple(
            self._plugin(f"{name}/{plugin}", plugin, (rows,)) for plugin in experiment.aggregators
        )
        sink_inputs = (rows, *(a.component for a in aggregators))
        sinks = tuple(
            self._sink(f"{name}/sink:{sink}", sink, sink_inputs) for sink in experiment.sinks
        )
        return _PendingExperiment(
            experiment, llm, tuple(judges), tuple(row_plugins), aggregators, sinks
        )

    def _pairwise(
        self, judge: str, variant: str, rows_of: Mapping[str, str]
    ) -> tuple[_Pending, tuple[_Pending, ...]]:
        settings = self.suite.settings.pairwise_judges[judge]
        name = f"compare/pairwise:{judge}:{variant}"
        spec = ComponentSpec(
            name,
            "judge",
            self.suite.settings.models[settings.model].clearance,
            inputs=(rows_of[self.suite.baseline.name], rows_of[variant]),
        )
        step = self._add(PairwiseStep, spec, judge=judge, settings=settings)
        sinks = tuple(
            self._sink(f"{name}/sink:{sink}", sink, (name,)) for sink in self.suite.comparison_sinks
        )
        return step, sinks

    def _comparison(
        self, comparison: str, variant: str, rows_of: Mapping[str, str]
    ) -> tuple[_Pending, tuple[_Pending, ...]]:
        name = f"compare/{comparison}:{variant}"
        inputs = (rows_of[self.suite.baseline.name], rows_of[variant])
        plugin = self._plugin(name, comparison, inputs)
        sinks = tuple(
            self._sink(f"{name}/sink:{sink}", sink, (name,)) for sink in self.suite.comparison_sinks
        )
        return plugin, sinks
