"""Drafts: what the editor produces while a user draws is a well-shaped definition with problems
(stored, reported, refused at run time); only shape faults are refused outright."""

from __future__ import annotations

from typing import Any

import pytest

from errors import InvalidDefinition
from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node
from workflows import graph
from workflows.definition import WorkflowDefinition


def parse(raw: dict[str, Any]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(raw)


# What PySpur's editor gives a freshly dropped node: null for every config field without a default.
FRESH: dict[str, dict[str, Any]] = {
    "OutputNode": {"output_map": None, "title": "OutputNode_1", "type": "object"},
    "StaticValueNode": {"values": None},
    "SubworkflowNode": {"workflow_id": None, "input_map": None},
}


@pytest.mark.parametrize("node_type", sorted(FRESH))
def test_a_freshly_dropped_node_with_null_config_is_a_problem_of_that_node_not_a_shape_fault(
    node_type: str,
) -> None:
    raw = double_graph()
    raw["nodes"].append(node("fresh", node_type, **FRESH[node_type]))
    defn = parse(raw)
    graph.check_shape(defn)
    problems = graph.definition_problems(defn)
    assert [p.node_id for p in problems] == ["fresh"]
    assert "config." in problems[0].detail
    with pytest.raises(InvalidDefinition, match="fresh"):
        graph.validate_definition(defn)


def test_a_half_drawn_graph_lists_every_problem_each_naming_its_node() -> None:
    raw = definition(
        [
            node("s", "StaticValueNode", values={"a": 1}),
            python_node("p", "return {}"),
            python_node("q", "return {}"),
            node("r", "RouterNode", route_map={"big": {"conditions": []}}),
        ],
        [
            link("p", "q"),
            link("q", "p"),
            link("s", "ghost"),
            link("s", "r"),
            link("r", "p"),
            link("r", "q", "gone"),
        ],
    )
    problems = graph.definition_problems(parse(raw))
    by_fault = {p.detail: p.node_id for p in problems}
    assert by_fault["Link s -> ghost points at missing node 'ghost'"] == "s"
    assert by_fault["A workflow needs exactly one root InputNode; found 0"] is None
    assert any("without a source_handle" in d and n == "r" for d, n in by_fault.items())
    assert any("names route 'gone'" in d and n == "r" for d, n in by_fault.items())
    assert any(d.startswith("The graph has a cycle: p -> q -> p") for d in by_fault)


def test_a_runnable_definition_has_no_problems() -> None:
    assert graph.definition_problems(parse(double_graph())) == []


def test_a_loop_dropped_by_the_editor_reports_its_body_output_node_with_null_map() -> None:
    raw = definition(
        [
            input_node(),
            node(
                "loop",
                "ForLoopNode",
                num_iterations=1,
                input_map=None,
                subworkflow={"nodes": [], "links": []},
            ),
            {**input_node({}, node_id="loop_input"), "parent_id": "loop"},
            {**node("loop_output", "OutputNode", output_map=None), "parent_id": "loop"},
            output_node({}),
        ],
        [link("input_node", "loop"), link("loop", "output_node")],
    )
    problems = graph.definition_problems(parse(raw))
    assert [p.node_id for p in problems] == ["loop_output"]
    assert "output_map" in problems[0].detail


def test_a_loop_whose_config_body_is_not_a_definition_is_a_problem_not_a_crash() -> None:
    raw = double_graph()
    raw["nodes"].append(node("loop", "ForLoopNode", subworkflow={"nodes": "no", "links": []}))
    problems = graph.definition_problems(parse(raw))
    assert [p.node_id for p in problems] == ["loop"]
    assert "not a workflow definition" in problems[0].detail


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (definition([input_node(), input_node()], []), "Duplicate node id"),
        (definition([input_node(), node("z", "NopeNode")], []), "unknown node type 'NopeNode'"),
        (definition([input_node(), node("_row", "StaticValueNode", values={})], []), "reserved"),
        (definition([input_node(), python_node("p", 5)], []), "config.code"),  # type: ignore[arg-type]
        (definition([input_node(), node("l", "ForLoopNode", num_iterations="many")], []), "num_iterations"),
    ],
)
def test_shape_faults_are_refused_even_in_a_draft(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidDefinition, match=fragment):
        graph.check_shape(parse(raw))


def test_values_out_of_range_or_not_allowed_are_draft_problems() -> None:
    raw = double_graph()
    raw["nodes"].append(node("l", "ForLoopNode", num_iterations=100_000))
    raw["nodes"].append(node("h", "HumanInterventionNode", on_timeout="later"))
    raw["nodes"].append(node("m", "ForLoopNode", num_iterations=""))  # a number field cleared
    defn = parse(raw)
    graph.check_shape(defn)
    assert {p.node_id for p in graph.definition_problems(defn)} >= {"l", "h", "m"}
