"""Definition validation and run scheduling, without any server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from errors import InvalidDefinition, InvalidInput
from run_status import RunStatus, TaskStatus
from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node
from workflows import graph
from workflows.definition import WorkflowDefinition

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def parse(raw: dict[str, Any]) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(raw)


def router(routes: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return node("router", "RouterNode", route_map={k: {"conditions": v} for k, v in routes.items()})


def test_valid_graph_passes_validation() -> None:
    graph.validate_definition(parse(double_graph()))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (definition([input_node(), input_node()], []), "Duplicate node id 'input_node'"),
        (definition([python_node("p", "return {}")], []), "exactly one root InputNode; found 0"),
        (definition([input_node(), input_node(node_id="i2")], []), "found 2"),
        (definition([input_node(), node("n", "FooNode")], []), "FooNode"),
        (definition([input_node()], [link("input_node", "ghost")]), "missing node 'ghost'"),
        (
            definition(
                [input_node(), python_node("a", "return {}"), python_node("b", "return {}")],
                [link("input_node", "a"), link("a", "b"), link("b", "a")],
            ),
            "cycle",
        ),
        (
            definition(
                [input_node(), router({"big": []}), output_node({})],
                [link("input_node", "router"), link("router", "output_node")],
            ),
            "without a source_handle",
        ),
        (
            definition(
                [input_node(), router({"big": []}), output_node({})],
                [link("input_node", "router"), link("router", "output_node", "small")],
            ),
            "route 'small'",
        ),
        (definition([input_node(), node("p", "PythonFuncNode")], []), "code"),
    ],
)
def test_invalid_definitions_are_refused_with_the_fault_named(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        graph.validate_definition(parse(raw))
    assert fragment in err.value.detail


def test_topological_order_follows_links() -> None:
    plan = graph.GraphPlan.build(parse(double_graph()))
    assert plan.order == ["input_node", "py1", "output_node"]


def test_ready_nodes_wait_for_all_predecessors() -> None:
    raw = definition(
        [input_node(), python_node("a", "return {}"), python_node("b", "return {}"), node("m", "MergeNode")],
        [link("input_node", "a"), link("input_node", "b"), link("a", "m"), link("b", "m")],
    )
    state = graph.RunState(graph.GraphPlan.build(parse(raw)))
    state.complete("input_node", {"x": 1}, NOW)
    assert state.ready() == ["a", "b"]
    state.start("a", {}, NOW)
    state.complete("a", {"r": 1}, NOW)
    assert state.ready() == ["b"]
    state.complete("b", {"r": 2}, NOW)
    assert state.ready() == ["m"]
    start = state.start_or_skip("m")
    assert start is not None and start.inputs == {"a": {"r": 1}, "b": {"r": 2}}


def test_untaken_route_skips_its_branch() -> None:
    raw = definition(
        [
            input_node(),
            router(
                {
                    "big": [{"variable": "input_node.x", "operator": "greater_than", "value": 10}],
                    "small": [{"variable": "input_node.x", "operator": "less_than", "value": 10}],
                }
            ),
            output_node({"v": "router.input_node.x"}, "out_big"),
            output_node({"v": "router.input_node.x"}, "out_small"),
        ],
        [
            link("input_node", "router"),
            link("router", "out_big", "big"),
            link("router", "out_small", "small"),
        ],
    )
    from workflows import nodes

    plan = graph.GraphPlan.build(parse(raw))
    state = graph.RunState(plan)
    state.complete("input_node", {"x": 3}, NOW)
    start = state.start_or_skip("router")
    assert start is not None
    state.complete("router", nodes.evaluate_pure(plan.by_id["router"], start.inputs) or {}, NOW)
    assert state.start_or_skip("out_big") is None
    small = state.start_or_skip("out_small")
    assert small is not None and small.inputs == {"router": {"input_node": {"x": 3}}}


def test_coalesce_runs_when_any_predecessor_sent_something() -> None:
    raw = definition(
        [
            input_node(),
            python_node("a", "return {}"),
            python_node("b", "return {}"),
            node("c", "CoalesceNode"),
        ],
        [link("input_node", "a"), link("input_node", "b"), link("a", "c"), link("b", "c")],
    )
    state = graph.RunState(graph.GraphPlan.build(parse(raw)))
    state.complete("input_node", {"x": 1}, NOW)
    state.skip("a", NOW)
    state.complete("b", {"v": 2}, NOW)
    start = state.start_or_skip("c")
    assert start is not None and start.inputs == {"b": {"v": 2}}


def test_failing_node_fails_run_and_cancels_downstream_as_upstream_failure() -> None:
    raw = definition(
        [
            input_node(),
            python_node("a", "return {}"),
            python_node("side", "return {}"),
            output_node({"y": "a.y"}),
        ],
        [link("input_node", "a"), link("input_node", "side"), link("a", "output_node")],
    )
    state = graph.RunState(graph.GraphPlan.build(parse(raw)))
    state.complete("input_node", {"x": 1}, NOW)
    state.start("a", {}, NOW)
    state.start("side", {}, NOW)
    state.fail("a", "boom", NOW)
    assert state.run_status() == RunStatus.FAILED
    assert state.records["output_node"].status == TaskStatus.CANCELED
    assert state.records["output_node"].error == graph.UPSTREAM_FAILURE
    assert state.records["side"].status == TaskStatus.CANCELED
    assert state.records["side"].error != graph.UPSTREAM_FAILURE
    assert state.ready() == []


def test_cancel_marks_every_unsettled_node_canceled() -> None:
    state = graph.RunState(graph.GraphPlan.build(parse(double_graph())))
    state.complete("input_node", {"x": 1}, NOW)
    state.start("py1", {}, NOW)
    state.cancel("Run canceled", NOW)
    assert state.run_status() == RunStatus.CANCELED
    assert {r.status for r in state.task_list()} == {TaskStatus.COMPLETED, TaskStatus.CANCELED}


def test_outputs_are_keyed_by_node_id_even_when_titles_repeat() -> None:
    raw = double_graph()
    raw["nodes"][1]["title"] = "Same"
    raw["nodes"][2]["title"] = "Same"
    raw["nodes"][2]["config"]["output_map"] = {"y": "Same.y"}
    state = graph.RunState(graph.GraphPlan.build(parse(raw)))
    state.complete("input_node", {"x": 1}, NOW)
    state.complete("py1", {"y": 2}, NOW)
    assert set(state.outputs()) == {"input_node", "py1"}


def test_a_node_reference_is_an_id_first_then_a_unique_title() -> None:
    raw = double_graph()
    raw["nodes"][1]["title"] = "output_node"  # a title equal to another node's id: the id wins
    defn = WorkflowDefinition.model_validate(raw)
    assert graph.node_by_reference(defn, "output_node", "Node") == "output_node"
    raw["nodes"][1]["title"] = "Double"
    defn = WorkflowDefinition.model_validate(raw)
    assert graph.node_by_reference(defn, "Double", "Node") == "py1"
    with pytest.raises(InvalidInput, match="Node 'Triple' is not a node"):
        graph.node_by_reference(defn, "Triple", "Node")
