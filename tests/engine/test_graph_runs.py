"""How `RunWorkflow` drives a graph: inline nodes, Python nodes (fast and slow path), failures,
child runs and loops, as seen by the activities it calls and by its result."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from run_status import RunStatus, TaskStatus
from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node
from tests.engine.conftest import Engine
from tests.engine.stubs import SubworkflowSnapshot, UserError, WorkflowDefinition


def statuses(engine: Engine, call: int = -1) -> dict[str, TaskStatus]:
    return {t.node_id: t.status for t in engine.stubs.finalized[call].tasks if not t.scope}


def routed_graph() -> dict[str, Any]:
    big = [{"variable": "input_node.x", "operator": "greater_than", "value": 10}]
    small = [{"variable": "input_node.x", "operator": "less_than", "value": 11}]
    return definition(
        [
            input_node(),
            node(
                "router", "RouterNode", route_map={"big": {"conditions": big}, "small": {"conditions": small}}
            ),
            node("big_label", "StaticValueNode", values={"label": "big"}),
            node("small_label", "StaticValueNode", values={"label": "small"}),
            node("pick", "CoalesceNode", preferences=["big_label", "small_label"]),
            output_node({"label": "pick.label", "x": "pick.label"}),
        ],
        [
            link("input_node", "router"),
            link("router", "big_label", "big"),
            link("router", "small_label", "small"),
            link("big_label", "pick"),
            link("small_label", "pick"),
            link("pick", "output_node"),
        ],
    )


@pytest.mark.parametrize(("x", "label", "untaken"), [(3, "small", "big_label"), (30, "big", "small_label")])
async def test_inline_graph_routes_coalesces_and_finalizes_once(
    engine: Engine, x: int, label: str, untaken: str
) -> None:
    result = await engine.run(routed_graph(), {"x": x})

    assert result.status == RunStatus.COMPLETED
    assert result.outputs["output_node"] == {"label": label, "x": label}
    assert engine.stubs.python_calls == []
    [final] = engine.stubs.finalized
    assert final.status == RunStatus.COMPLETED
    assert final.outputs == result.outputs
    assert statuses(engine)[untaken] == TaskStatus.CANCELED
    assert statuses(engine)["output_node"] == TaskStatus.COMPLETED


async def test_python_node_runs_once_on_the_fast_path(engine: Engine) -> None:
    result = await engine.run(double_graph(), {"x": 21})

    assert result.status == RunStatus.COMPLETED
    assert result.outputs["output_node"] == {"y": 42}
    [call] = engine.stubs.python_calls
    assert call.local
    assert call.arg.inputs == {"input_node": {"x": 21}}
    assert call.arg.limits["wall_seconds"] == 1.0  # bounded by the fast-path limit
    [final] = engine.stubs.finalized
    assert final.outputs["py1"] == {"y": 42}
    assert set(statuses(engine).values()) == {TaskStatus.COMPLETED}


async def test_user_error_fails_the_run_with_its_message_and_cancels_downstream(engine: Engine) -> None:
    def fails(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if node_id == "py1":
            raise UserError("boom")
        return {"z": 1}

    engine.stubs.python = fails
    defn = definition(
        [input_node(), python_node("py1", "..."), python_node("py2", "..."), output_node({"z": "py2.z"})],
        [link("input_node", "py1"), link("py1", "py2"), link("py2", "output_node")],
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await engine.run(defn, {"x": 1})

    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.message == "Node 'py1' failed: UserError: boom"
    assert [c.arg.node_id for c in engine.stubs.python_calls] == ["py1"]  # no slow-path retry
    [final] = engine.stubs.finalized
    assert final.status == RunStatus.FAILED
    assert final.error == "Node 'py1' failed: UserError: boom"
    assert statuses(engine) == {
        "input_node": TaskStatus.COMPLETED,
        "py1": TaskStatus.FAILED,
        "py2": TaskStatus.CANCELED,
        "output_node": TaskStatus.CANCELED,
    }


async def test_fast_path_timeout_falls_back_to_the_heartbeating_activity(engine: Engine) -> None:
    engine.stubs.slow = {"py1"}
    result = await engine.run(double_graph(), {"x": 5})

    assert result.outputs["output_node"] == {"y": 10}
    fast, slow = engine.stubs.python_calls
    assert (fast.local, slow.local) == (True, False)
    assert fast.arg.limits["wall_seconds"] == 1.0
    # The slow path has the node's own limit, and the progress was already handed to the fast path.
    assert "wall_seconds" not in slow.arg.limits
    assert slow.arg.tasks == []
    assert [f.status for f in engine.stubs.finalized] == [RunStatus.COMPLETED]


async def test_subworkflow_node_runs_the_pinned_workflow_as_a_child_run(engine: Engine) -> None:
    child_wf = "11111111-1111-1111-1111-111111111111"
    snapshot = SubworkflowSnapshot(
        workflow_id=child_wf, name="child", definition=WorkflowDefinition.model_validate(double_graph())
    )
    parent = definition(
        [
            input_node(),
            node("sub", "SubworkflowNode", workflow_id=child_wf, input_map={"x": "input_node.x"}),
            output_node({"y": "sub.y"}),
        ],
        [link("input_node", "sub"), link("sub", "output_node")],
    )
    handle = await engine.start(parent, {"x": 4}, subworkflows={child_wf: snapshot})
    result = await handle.result()

    assert result.outputs["output_node"] == {"y": 8}
    [child] = engine.stubs.child_runs
    assert child.workflow_id == child_wf
    assert child.initial_inputs == {"input_node": {"x": 4}}
    assert child.parent_run_id == result.run_id
    # The child run finalizes its own row first, then the parent, which names the child in its task.
    assert [f.run_id for f in engine.stubs.finalized] == [child.run_id, result.run_id]
    sub_task = next(t for t in engine.stubs.finalized[1].tasks if t.node_id == "sub")
    assert sub_task.subworkflow_output == {"run_id": child.run_id}


def counting_loop(iterations: int) -> dict[str, Any]:
    """A loop whose body's Python node `step` counts up from the input's x."""
    return definition(
        [
            input_node(),
            node("loop", "ForLoopNode", num_iterations=iterations, input_map={"count": "input_node.x"}),
            {**input_node({"count": "integer"}, node_id="loop_in"), "parent_id": "loop"},
            {**python_node("step", "...", {"count": "integer"}), "parent_id": "loop"},
            {**output_node({"count": "step.count"}, node_id="loop_out"), "parent_id": "loop"},
            output_node({"count": "loop.count"}),
        ],
        [
            link("input_node", "loop"),
            link("loop_in", "step"),
            link("step", "loop_out"),
            link("loop", "output_node"),
        ],
    )


async def test_for_loop_feeds_each_iteration_the_last_output_and_the_history(engine: Engine) -> None:
    def step(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"count": inputs["loop_in"]["count"] + 1}

    engine.stubs.python = step
    defn = counting_loop(3)
    result = await engine.run(defn, {"x": 1})

    assert result.outputs["output_node"] == {"count": 4}
    histories = [c.arg.inputs["loop_in"]["loop_history"] for c in engine.stubs.python_calls]
    assert [h.get("step", []) for h in histories] == [[], [{"count": 2}], [{"count": 2}, {"count": 3}]]
    [final] = engine.stubs.finalized
    loop_task = next(t for t in final.tasks if t.node_id == "loop")
    assert loop_task.subworkflow_output is not None
    assert loop_task.subworkflow_output["step"] == [{"count": 2}, {"count": 3}, {"count": 4}]
    body_scopes = sorted({t.scope for t in final.tasks if t.node_id == "step"})
    assert body_scopes == ["loop#1", "loop#2", "loop#3"]


async def test_merge_and_static_value_feed_python_by_title(engine: Engine) -> None:
    engine.stubs.python = lambda node_id, inputs: {
        "s": inputs["merge"]["static"]["k"] + inputs["merge"]["input_node"]["x"]
    }
    defn = definition(
        [
            input_node(),
            node("static", "StaticValueNode", values={"k": 7}),
            node("merge", "MergeNode"),
            python_node("py", "..."),
        ],
        [
            link("input_node", "static"),
            link("input_node", "merge"),
            link("static", "merge"),
            link("merge", "py"),
        ],
    )
    result = await engine.run(defn, {"x": 1})

    assert result.outputs["py"] == {"s": 8}


def chain() -> dict[str, Any]:
    """input -> a -> b -> output."""
    return definition(
        [input_node(), python_node("a", "..."), python_node("b", "..."), output_node({"z": "b.z"})],
        [link("input_node", "a"), link("a", "b"), link("b", "output_node")],
    )


async def test_partial_run_stops_at_its_target_uses_given_outputs_and_records_nothing(engine: Engine) -> None:
    engine.stubs.python = lambda node_id, inputs: {"z": inputs["a"]["y"] * 10}
    result = await engine.run(
        chain(), {"x": 100}, target_node_id="b", precomputed={"a": {"y": 5}}, persist=False
    )

    assert result.status == RunStatus.COMPLETED
    assert result.outputs == {"input_node": {"x": 100}, "a": {"y": 5}, "b": {"z": 50}}
    [call] = engine.stubs.python_calls
    assert (call.arg.node_id, call.arg.record, call.arg.tasks) == ("b", False, [])
    assert engine.stubs.finalized == []
    assert engine.stubs.progress == []


async def test_partial_run_reports_a_failing_node_in_its_result(engine: Engine) -> None:
    def fails(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        raise UserError("boom")

    engine.stubs.python = fails
    result = await engine.run(chain(), {"x": 1}, target_node_id="a", persist=False)

    assert result.status == RunStatus.FAILED
    assert result.error == "Node 'a' failed: UserError: boom"
    assert engine.stubs.finalized == []


async def test_a_failing_subworkflow_fails_its_node_and_the_run(engine: Engine) -> None:
    def fails(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        raise UserError("child broke")

    engine.stubs.python = fails
    child_wf = "22222222-2222-2222-2222-222222222222"
    snapshot = SubworkflowSnapshot(
        workflow_id=child_wf, name="child", definition=WorkflowDefinition.model_validate(double_graph())
    )
    parent = definition(
        [input_node(), node("sub", "SubworkflowNode", workflow_id=child_wf), output_node({"y": "sub.y"})],
        [link("input_node", "sub"), link("sub", "output_node")],
    )
    with pytest.raises(WorkflowFailureError):
        await engine.run(parent, {"x": 1}, subworkflows={child_wf: snapshot})

    child, parent_final = engine.stubs.finalized
    assert child.status == RunStatus.FAILED
    # A stored child run fails its execution, so the node reports the child's own error.
    assert parent_final.error == "Node 'sub' failed: Node 'py1' failed: UserError: child broke"
    sub_task = next(t for t in parent_final.tasks if t.node_id == "sub")
    assert sub_task.status == TaskStatus.FAILED


async def test_a_failing_loop_body_fails_the_loop_node_naming_the_iteration(engine: Engine) -> None:
    def fails_second(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs["loop_in"]["count"] == 2:
            raise UserError("two")
        return {"count": inputs["loop_in"]["count"] + 1}

    engine.stubs.python = fails_second
    with pytest.raises(WorkflowFailureError):
        await engine.run(counting_loop(3), {"x": 1})

    [final] = engine.stubs.finalized
    assert final.error == "Node 'loop' failed: Iteration 2: node 'step' failed: UserError: two"
    assert len(engine.stubs.python_calls) == 2  # the third iteration never starts


async def test_outputs_the_database_refuses_fail_the_run_once_without_them(engine: Engine) -> None:
    engine.stubs.refuse_finalize = 1
    with pytest.raises(WorkflowFailureError):
        await engine.run(double_graph(), {"x": 2})
    refused, bare = engine.stubs.finalized
    assert refused.status == RunStatus.COMPLETED and refused.outputs
    assert bare.status == RunStatus.FAILED and bare.outputs == {}
    assert bare.error is not None and "could not be stored" in bare.error and "U+0000" in bare.error
    assert {t.node_id: t.status for t in bare.tasks}["py1"] == TaskStatus.COMPLETED
