"""The suite as the clearance plan sees it: one chain per experiment, plus comparisons.

Plugin components take the stricter of what the settings declare and what the plugin itself
declares: the lower clearance and the higher floor. The plan therefore predicts exactly the
levels the workers will produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from elspeth.config import Experiment, PluginSettings, Suite
from elspeth.orchestrator import PluginInfo
from elspeth.security import (
    ClearancePlan,
    ComponentSpec,
    PipelineSpec,
    build_clearance_plan,
    join,
)

DATASOURCE = "datasource"


def llm_component(experiment: str) -> str:
    return f"{experiment}/llm"


def plugin_component(experiment: str, plugin: str) -> str:
    return f"{experiment}/{plugin}"


def sink_component(experiment: str, sink: str) -> str:
    return f"{experiment}/sink:{sink}"


def comparison_component(comparison: str, variant: str) -> str:
    return f"compare/{comparison}:{variant}"


def comparison_sink_component(comparison: str, variant: str, sink: str) -> str:
    return f"compare/{comparison}:{variant}/sink:{sink}"


def report_component(sink: str) -> str:
    return f"report:{sink}"


@dataclass(frozen=True, slots=True)
class SuitePlan:
    """The clearance plan plus the name of the last row stage of every experiment.

    From :meth:`SuiteRunner.validate` it also says what validation had to start (``started``,
    e.g. ``("1 catalog worker (to check plugin parameters)",)``; empty when nothing was) and
    the settings' warnings (``file:line:column: key: message``, e.g. a model with no price).
    """

    plan: ClearancePlan
    last_row_stage: Mapping[str, str]
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


def _plugin_spec(
    name: str, settings: PluginSettings, info: PluginInfo, inputs: tuple[str, ...]
) -> ComponentSpec:
    clearance = min(settings.clearance, info.clearance, key=lambda level: level.rank)
    floors = [f for f in (settings.output_floor, info.output_floor) if f is not None]
    return ComponentSpec(
        name=name,
        kind=info.kind.value,
        clearance=clearance,
        inputs=inputs,
        output_floor=join(*floors) if floors else None,
    )


def build_suite_plan(suite: Suite, infos: Mapping[str, PluginInfo]) -> SuitePlan:
    """``infos`` maps each plugin instance name (settings key) to its worker's description."""
    settings = suite.settings
    components: list[ComponentSpec] = [settings.datasource.component_spec(DATASOURCE)]
    last: dict[str, str] = {}
    # Everything a suite-level report shows: each experiment's rows and aggregates, and every
    # comparison. A report is cleared for all of it or refused before any data is read.
    reported: list[str] = []
    for experiment in suite.experiments:
        components.extend(_experiment_chain(suite, experiment, infos, last))
        reported.append(last[experiment.name])
        reported.extend(plugin_component(experiment.name, a) for a in experiment.aggregators)
    baseline = suite.baseline.name
    for comparison in settings.defaults.comparisons:
        for variant in suite.experiments:
            if variant.baseline:
                continue
            name = comparison_component(comparison, variant.name)
            reported.append(name)
            inputs = (last[baseline], last[variant.name])
            components.append(
                _plugin_spec(name, settings.plugins[comparison], infos[comparison], inputs)
            )
            components.extend(
                ComponentSpec(
                    comparison_sink_component(comparison, variant.name, sink),
                    "sink",
                    settings.sinks[sink].clearance,
                    inputs=(name,),
                )
                for sink in suite.comparison_sinks
            )
    components.extend(
        suite.report_sink(sink).component_spec(report_component(sink), tuple(reported))
        for sink in settings.reports
    )
    return SuitePlan(build_clearance_plan(PipelineSpec(tuple(components))), last)


def _experiment_chain(
    suite: Suite,
    experiment: Experiment,
    infos: Mapping[str, PluginInfo],
    last: dict[str, str],
) -> list[ComponentSpec]:
    settings = suite.settings
    model = settings.models[experiment.model]
    chain = [
        ComponentSpec(
            llm_component(experiment.name),
            "llm",
            model.clearance,
            inputs=(DATASOURCE,),
        )
    ]
    for plugin in experiment.row_plugins:
        chain.append(
            _plugin_spec(
                plugin_component(experiment.name, plugin),
                settings.plugins[plugin],
                infos[plugin],
                (chain[-1].name,),
            )
        )
    rows = chain[-1].name
    last[experiment.name] = rows
    aggregates = [
        _plugin_spec(
            plugin_component(experiment.name, plugin),
            settings.plugins[plugin],
            infos[plugin],
            (rows,),
        )
        for plugin in experiment.aggregators
    ]
    chain.extend(aggregates)
    chain.extend(
        ComponentSpec(
            sink_component(experiment.name, sink),
            "sink",
            settings.sinks[sink].clearance,
            inputs=(rows, *(a.name for a in aggregates)),
        )
        for sink in experiment.sinks
    )
    return chain
