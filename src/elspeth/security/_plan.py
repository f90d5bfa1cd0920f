"""The clearance plan: static propagation of levels through a pipeline, before any data is read.

A pipeline is a directed acyclic graph of components given in dependency order. Datasources
declare the *classification* of the data they produce; every component declares its *clearance*
(the highest level it may receive); a component may declare an *output floor* (its outputs are
marked at least that high). The level reaching a component is the join of everything upstream of
it; a component whose clearance is below that level is a violation. All violations are reported
at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from elspeth.errors import ConfigurationError
from elspeth.security._errors import ClearancePlanError
from elspeth.security._levels import SecurityLevel, join, join_all, may_read


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """One component of a pipeline as the plan sees it.

    ``classification`` is set for datasources only (and then ``inputs`` is empty);
    ``clearance`` is every component's read limit; ``output_floor`` marks outputs at least that
    high. They are three distinct notions and are never inferred from one another.
    """

    name: str
    kind: str
    clearance: SecurityLevel
    inputs: tuple[str, ...] = ()
    output_floor: SecurityLevel | None = None
    classification: SecurityLevel | None = None

    @property
    def is_datasource(self) -> bool:
        return self.classification is not None


@dataclass(frozen=True, slots=True)
class Violation:
    """Data at ``incoming`` would reach ``component`` cleared only to ``clearance``."""

    component: str
    kind: str
    incoming: SecurityLevel
    clearance: SecurityLevel
    sources: tuple[str, ...]

    def describe(self) -> str:
        via = ", ".join(self.sources)
        return (
            f"{self.kind} '{self.component}' is cleared to {self.clearance} but receives "
            f"{self.incoming} data (from {via}); raise its clearance to {self.incoming} "
            f"or remove it from this pipeline"
        )


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """The plan's verdict on one component."""

    component: ComponentSpec
    incoming: SecurityLevel
    outgoing: SecurityLevel

    @property
    def allowed(self) -> bool:
        return may_read(self.component.clearance, self.incoming)

    def as_record(self) -> dict[str, str | bool]:
        """The verdict as plain data, levels by name: for the audit log, reports and bundles."""
        return {
            "component": self.component.name,
            "kind": self.component.kind,
            "clearance": self.component.clearance.name,
            "incoming": self.incoming.name,
            "outgoing": self.outgoing.name,
            "allowed": self.allowed,
        }


@dataclass(frozen=True, slots=True)
class ClearancePlan:
    """Every component's incoming and outgoing level, and every violation found."""

    entries: tuple[PlanEntry, ...]
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def level_of(self, component: str) -> SecurityLevel:
        """The level of data a component emits; runtime frames must carry exactly this."""
        for entry in self.entries:
            if entry.component.name == component:
                return entry.outgoing
        raise KeyError(f"no component named {component!r} in the clearance plan")

    def incoming_of(self, component: str) -> SecurityLevel:
        """The level of data that reaches a component; worker pools are keyed by it."""
        for entry in self.entries:
            if entry.component.name == component:
                return entry.incoming
        raise KeyError(f"no component named {component!r} in the clearance plan")


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """Components in dependency order: every input names an earlier component."""

    components: tuple[ComponentSpec, ...]

    @classmethod
    def linear(
        cls,
        datasource: ComponentSpec,
        stages: Sequence[ComponentSpec] = (),
        sinks: Sequence[ComponentSpec] = (),
    ) -> PipelineSpec:
        """A chain: datasource → each stage in order → every sink reads the last stage."""
        chained: list[ComponentSpec] = [datasource]
        for stage in stages:
            chained.append(_with_inputs(stage, (chained[-1].name,)))
        last = chained[-1].name
        chained.extend(_with_inputs(sink, (last,)) for sink in sinks)
        return cls(tuple(chained))

    def __post_init__(self) -> None:
        _check_structure(self.components)


def build_clearance_plan(pipeline: PipelineSpec) -> ClearancePlan:
    """Propagate levels through ``pipeline`` and collect every violation."""
    outgoing: dict[str, SecurityLevel] = {}
    entries: list[PlanEntry] = []
    violations: list[Violation] = []
    for component in pipeline.components:
        if component.classification is not None:
            incoming = component.classification
        else:
            incoming = join_all(outgoing[name] for name in component.inputs)
        floor = component.output_floor
        level_out = join(incoming, floor) if floor is not None else incoming
        outgoing[component.name] = level_out
        entry = PlanEntry(component, incoming, level_out)
        entries.append(entry)
        if not entry.allowed:
            sources = component.inputs or (component.name,)
            violations.append(
                Violation(component.name, component.kind, incoming, component.clearance, sources)
            )
    return ClearancePlan(tuple(entries), tuple(violations))


def require_clearance_plan(pipeline: PipelineSpec) -> ClearancePlan:
    """:func:`build_clearance_plan`, raising :class:`ClearancePlanError` listing every violation."""
    plan = build_clearance_plan(pipeline)
    if plan.violations:
        raise ClearancePlanError(plan.violations)
    return plan


def _with_inputs(component: ComponentSpec, inputs: tuple[str, ...]) -> ComponentSpec:
    return ComponentSpec(
        name=component.name,
        kind=component.kind,
        clearance=component.clearance,
        inputs=inputs,
        output_floor=component.output_floor,
        classification=component.classification,
    )


def _check_structure(components: Iterable[ComponentSpec]) -> None:
    seen: set[str] = set()
    problems: list[str] = []
    for component in components:
        if not component.name:
            problems.append(f"a {component.kind} has an empty name")
        if component.name in seen:
            problems.append(f"component name {component.name!r} is used twice")
        if component.is_datasource and component.inputs:
            problems.append(f"datasource {component.name!r} cannot have inputs")
        if not component.is_datasource and not component.inputs:
            problems.append(
                f"{component.kind} {component.name!r} has no inputs and no classification"
            )
        problems.extend(
            f"{component.kind} {component.name!r} reads {name!r}, which is not an earlier component"
            for name in component.inputs
            if name not in seen
        )
        seen.add(component.name)
    if problems:
        raise ConfigurationError("invalid pipeline: " + "; ".join(problems))
