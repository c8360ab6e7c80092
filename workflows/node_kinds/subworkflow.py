"""SubworkflowNode: runs another stored workflow of the tenant as a child run (a child `RunWorkflow`);
its OutputNode's output is this node's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from errors import InvalidInput
from run_status import RunStatus
from workflows.contracts import (
    CreateChildRunInput,
    RunActivitiesContract,
    RunInput,
    RunWorkflowContract,
    SubworkflowSnapshot,
)
from workflows.node_configs import SubworkflowNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, RunScope, db_write, object_schema
from workflows.node_kinds.fields import map_inputs, merged_fields, validate_run_inputs
from workflows.search_attributes import of_new_run, temporal_workflow_id

if TYPE_CHECKING:
    from workflows.graph import RunState


class SubworkflowHandler(NodeHandler[SubworkflowNodeConfig]):
    node_type = "SubworkflowNode"
    display_name = "Subworkflow"
    group = "Logic"
    kind = NodeKind.CONTROL
    config_model = SubworkflowNodeConfig
    acronym = "SN"
    color = "#17A2B8"
    input_schema = object_schema("SubworkflowNodeInput", open_=True)
    output_schema = object_schema("SubworkflowNodeOutput", open_=True)
    runs_child = True

    async def run(self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]) -> NodeOutput:
        """The child run's OutputNode output.

        Raises:
            ApplicationError: the workflow is unknown to this run, has no OutputNode, the mapped
                inputs do not fit its InputNode, or the child run did not complete.
        """
        node = state.plan.by_id[node_id]
        config = self.config(node)
        snap = run.inp.subworkflows.get(config.workflow_id)
        if snap is None:
            raise ApplicationError(f"Workflow '{config.workflow_id}' was not found", non_retryable=True)
        child_plan = run.plan(snap.definition)
        output_node = run.first_output_node(snap.definition)
        if output_node is None:
            raise ApplicationError(f"Workflow '{snap.name}' has no OutputNode", non_retryable=True)
        payload = map_inputs(node, inputs, config.input_map) if config.input_map else merged_fields(inputs)
        try:
            payload = validate_run_inputs(child_plan.by_id[child_plan.input_node_id], payload)
        except InvalidInput as err:
            raise ApplicationError(
                f"Inputs for workflow '{snap.name}': {err.detail}", non_retryable=True
            ) from None
        child_id = str(workflow.uuid4())
        state.records[node_id].subworkflow_output = {"run_id": child_id}
        if run.inp.persist:
            await db_write(
                RunActivitiesContract.create_child_run,
                CreateChildRunInput(
                    run_id=child_id,
                    parent_run_id=run.inp.run_id,
                    tenant_id=run.inp.tenant_id,
                    workflow_id=snap.workflow_id,
                    version_id=snap.version_id,
                    initial_inputs={child_plan.input_node_id: payload},
                    triggered_by=run.inp.triggered_by,
                    start_time=workflow.now(),
                ),
                f"child run {node.title}",
            )
        result = await workflow.execute_child_workflow(
            RunWorkflowContract.run,
            _child_input(run.inp, snap, child_id, payload),
            id=temporal_workflow_id(child_id),
            search_attributes=of_new_run(child_id, snap.workflow_id),
            memo={"workflow_name": snap.name, "workflow_id": snap.workflow_id, "run_type": "subworkflow"},
        )
        if result.status != RunStatus.COMPLETED:
            raise ApplicationError(
                f"Workflow '{snap.name}' ended {result.status.value}: {result.error}", non_retryable=True
            )
        output = result.outputs.get(output_node.id)
        if not isinstance(output, dict):
            raise ApplicationError(f"Workflow '{snap.name}' produced no output", non_retryable=True)
        return output


def _child_input(
    parent: RunInput, snap: SubworkflowSnapshot, child_id: str, payload: dict[str, Any]
) -> RunInput:
    return RunInput(
        run_id=child_id,
        tenant_id=parent.tenant_id,
        workflow_id=snap.workflow_id,
        workflow_name=snap.name,
        definition=snap.definition,
        input_payload=payload,
        policy=parent.policy,
        persist=parent.persist,
        subworkflows=parent.subworkflows,
        triggered_by=parent.triggered_by,
    )
