"""ForLoopNode: drives its body (the nodes whose parent_id it is) `num_iterations` times, PySpur's
way: each iteration gets the running input plus `loop_history`, and the body's OutputNode fields are
merged back in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.exceptions import ApplicationError

from workflows.node_configs import ForLoopNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, RunScope, object_schema
from workflows.node_kinds.fields import map_inputs

if TYPE_CHECKING:
    from workflows.graph import RunState

History = dict[str, list[dict[str, Any]]]


class ForLoopHandler(NodeHandler[ForLoopNodeConfig]):
    node_type = "ForLoopNode"
    display_name = "ForLoopNode"
    group = "Experimental"
    kind = NodeKind.CONTROL
    config_model = ForLoopNodeConfig
    acronym = "FLN"
    color = "#00BFFF"
    input_schema = object_schema("ForLoopNodeInput")
    output_schema = object_schema("ForLoopNodeOutput")
    has_body = True

    async def run(self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]) -> NodeOutput:
        """The body's OutputNode fields after the last iteration.

        Raises:
            ApplicationError: a body node failed, or the body's OutputNode produced nothing.
        """
        node = state.plan.by_id[node_id]
        config = self.config(node)
        plan = run.body_plan(state, node)
        output_id = plan.output_ids[0]
        current = map_inputs(node, inputs, config.input_map) if config.input_map else dict(inputs)
        history: History = {}
        record = state.records[node_id]
        record.subworkflow = plan.definition.model_dump(mode="json")
        prefix = f"{state.scope}/" if state.scope else ""
        final: dict[str, Any] = {}
        for i in range(1, config.num_iterations + 1):
            body_state = run.new_state(plan, f"{prefix}{node_id}#{i}")
            await run.drive(body_state, {**current, "loop_history": _copy_history(history)})
            if body_state.failed_node is not None:
                failed = body_state.records[body_state.failed_node]
                raise ApplicationError(
                    f"Iteration {i}: node '{failed.node_id}' failed: {failed.error}", non_retryable=True
                )
            outputs = body_state.outputs()
            for nid, out in outputs.items():
                history.setdefault(nid, []).append({k: v for k, v in out.items() if k != "loop_history"})
            if output_id not in outputs:
                raise ApplicationError(
                    f"Iteration {i}: the body's OutputNode '{output_id}' produced no output",
                    non_retryable=True,
                )
            final = outputs[output_id]
            current.update(final)
            record.subworkflow_output = _copy_history(history)
        return {k: current[k] for k in final}


def _copy_history(history: History) -> History:
    return {k: list(v) for k, v in history.items()}
