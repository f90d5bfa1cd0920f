from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elspeth.errors import ConfigurationError
from elspeth.security import (
    ClearancePlanError,
    ComponentSpec,
    PipelineSpec,
    SecurityLevel,
    build_clearance_plan,
    require_clearance_plan,
)

L = SecurityLevel


def source(level: SecurityLevel, clearance: SecurityLevel | None = None) -> ComponentSpec:
    return ComponentSpec("data", "datasource", clearance or level, classification=level)


def test_levels_propagate_with_floors() -> None:
    pipeline = PipelineSpec.linear(
        source(L.OFFICIAL),
        [
            ComponentSpec("llm", "llm", L.OFFICIAL),
            ComponentSpec("scorer", "row_plugin", L.PROTECTED, output_floor=L.PROTECTED),
            ComponentSpec("stats", "aggregator", L.SECRET),
        ],
        [ComponentSpec("csv", "sink", L.SECRET)],
    )
    plan = require_clearance_plan(pipeline)
    assert [(e.component.name, e.incoming, e.outgoing) for e in plan.entries] == [
        ("data", L.OFFICIAL, L.OFFICIAL),
        ("llm", L.OFFICIAL, L.OFFICIAL),
        ("scorer", L.OFFICIAL, L.PROTECTED),
        ("stats", L.PROTECTED, L.PROTECTED),
        ("csv", L.PROTECTED, L.PROTECTED),
    ]
    assert plan.level_of("scorer") is L.PROTECTED
    assert plan.incoming_of("stats") is L.PROTECTED


def test_every_violation_is_reported_at_once_with_names_and_levels() -> None:
    pipeline = PipelineSpec.linear(
        source(L.OFFICIAL_SENSITIVE),
        [ComponentSpec("cheap-llm", "llm", L.OFFICIAL)],
        [
            ComponentSpec("public-csv", "sink", L.UNOFFICIAL),
            ComponentSpec("vault", "sink", L.SECRET),
        ],
    )
    with pytest.raises(ClearancePlanError) as caught:
        require_clearance_plan(pipeline)
    violations = caught.value.violations
    assert [v.component for v in violations] == ["cheap-llm", "public-csv"]
    message = str(caught.value)
    assert "2 violation(s)" in message
    assert "llm 'cheap-llm' is cleared to OFFICIAL but receives OFFICIAL_SENSITIVE" in message
    assert "sink 'public-csv' is cleared to UNOFFICIAL" in message
    assert "raise its clearance to OFFICIAL_SENSITIVE" in message


def test_datasource_must_be_cleared_for_its_own_classification() -> None:
    plan = build_clearance_plan(PipelineSpec.linear(source(L.SECRET, clearance=L.OFFICIAL)))
    assert [v.component for v in plan.violations] == ["data"]


def test_a_floor_raises_what_downstream_sinks_must_hold() -> None:
    pipeline = PipelineSpec.linear(
        source(L.OFFICIAL),
        [ComponentSpec("redactor", "row_plugin", L.OFFICIAL, output_floor=L.SECRET)],
        [ComponentSpec("csv", "sink", L.PROTECTED)],
    )
    plan = build_clearance_plan(pipeline)
    assert [(v.component, v.incoming) for v in plan.violations] == [("csv", L.SECRET)]


def test_joins_across_branches_take_the_highest_input() -> None:
    components = (
        ComponentSpec("a", "datasource", L.OFFICIAL, classification=L.OFFICIAL),
        ComponentSpec("b", "datasource", L.PROTECTED, classification=L.PROTECTED),
        ComponentSpec("compare", "baseline_comparison", L.OFFICIAL, inputs=("a", "b")),
    )
    plan = build_clearance_plan(PipelineSpec(components))
    assert plan.violations[0].incoming is L.PROTECTED
    assert plan.violations[0].sources == ("a", "b")


@pytest.mark.parametrize(
    ("components", "fragment"),
    [
        (
            (ComponentSpec("x", "llm", L.OFFICIAL, inputs=("missing",)),),
            "reads 'missing', which is not an earlier component",
        ),
        (
            (
                ComponentSpec("d", "datasource", L.OFFICIAL, classification=L.OFFICIAL),
                ComponentSpec("d", "sink", L.OFFICIAL, inputs=("d",)),
            ),
            "'d' is used twice",
        ),
        ((ComponentSpec("x", "sink", L.OFFICIAL),), "has no inputs and no classification"),
    ],
)
def test_malformed_pipelines_name_the_problem(
    components: tuple[ComponentSpec, ...], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        PipelineSpec(components)


levels = st.sampled_from(list(SecurityLevel))


@given(levels, st.lists(st.tuples(levels, st.one_of(st.none(), levels)), max_size=6), levels)
def test_outgoing_never_falls_and_violations_match_clearances(
    classification: SecurityLevel,
    stages: list[tuple[SecurityLevel, SecurityLevel | None]],
    sink_clearance: SecurityLevel,
) -> None:
    pipeline = PipelineSpec.linear(
        source(classification, clearance=L.SECRET),
        [
            ComponentSpec(f"s{i}", "row_plugin", c, output_floor=f)
            for i, (c, f) in enumerate(stages)
        ],
        [ComponentSpec("sink", "sink", sink_clearance)],
    )
    plan = build_clearance_plan(pipeline)
    outgoing = [entry.outgoing for entry in plan.entries]
    assert outgoing == sorted(outgoing)
    assert all(entry.outgoing >= entry.incoming for entry in plan.entries)
    expected = {e.component.name for e in plan.entries if e.component.clearance < e.incoming}
    assert {v.component for v in plan.violations} == expected
