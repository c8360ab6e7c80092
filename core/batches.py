"""Batch runs over datasets: checks before anything is created, then the parent run and its execution."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core.datasets import get_dataset
from core.run_start import node_policy, start_execution
from core.stored_workflows import get_workflow
from core.workflow_versions import resolve_subworkflows, version_for_run
from db import run_state
from db.accounts import Principal
from db.models import OutputFile, Run, utcnow
from errors import BadRequest, InvalidInput
from run_status import RunStatus
from settings import Settings
from workflows import graph, nodes
from workflows.batch_workflow import BatchWorkflow
from workflows.contracts import BatchInput
from workflows.definition import WorkflowDefinition


def batch_fields(defn: WorkflowDefinition) -> tuple[list[str], list[str]]:
    """(required, optional) dataset columns: the InputNode's declared fields, and PySpur's
    `input_schema` keys (all required)."""
    graph.check_size(defn)
    plan = graph.GraphPlan.build(defn)
    input_node = plan.by_id[plan.input_node_id]
    declared = nodes.declared_input_fields(input_node)
    legacy = input_node.config.get("input_schema")
    required = [f.name for f in declared if f.required]
    if isinstance(legacy, dict):
        required += [k for k in legacy if k not in required]
    optional = [f.name for f in declared if not f.required and f.name not in required]
    return required, optional


async def start_batch_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    workflow_id: str,
    dataset_id: str,
    mini_batch_size: int,
    *,
    eager: bool = False,
) -> Run:
    """Check the workflow and dataset, then create the parent run, its output file and execution.

    Raises:
        NotFound: unknown workflow or dataset (nothing is created).
        InvalidDefinition: the workflow, or one it runs, has a problem (nothing is created).
        BadRequest: a field the InputNode needs is not a column of the dataset.
        InvalidInput: the graph has a human step (rows cannot wait for a person) or the dataset is empty.
        Unavailable: Temporal refused the start (the run is stored FAILED).
    """
    wf = await get_workflow(session, who, workflow_id)
    defn = WorkflowDefinition.model_validate(wf.definition)
    graph.validate_definition(defn)  # a stored draft may not run
    dataset = await get_dataset(session, who, dataset_id)
    required, _ = batch_fields(defn)
    for name in required:
        if name not in dataset.columns:
            raise BadRequest(f"Input field '{name}' in input schema not found in the dataset")
    if dataset.row_count == 0:
        raise InvalidInput("The dataset has no rows")
    reachable = await resolve_subworkflows(session, who.tenant_id, defn, wf, pin=False)
    human = graph.human_step([defn, *(s.definition for s in reachable.values())])
    if human is not None:
        raise InvalidInput(
            f"A batch run cannot include a human step ('{human}'): rows cannot wait for a person"
        )
    subworkflows = await resolve_subworkflows(session, who.tenant_id, defn, wf, pin=True)
    version = await version_for_run(session, wf)
    run_id = uuid.uuid4()
    output_file = OutputFile(tenant_id=who.tenant_id, run_id=run_id, file_name=f"output_{run_id}.jsonl")
    session.add(output_file)
    await session.flush()
    run = Run(
        id=run_id,
        tenant_id=who.tenant_id,
        workflow_id=wf.id,
        workflow_version_id=version.id,
        triggered_by=who.user_id,
        status=RunStatus.PENDING.value,
        run_type="batch",
        initial_inputs={},
        input_dataset_id=dataset.id,
        output_file_id=output_file.id,
        rows_total=dataset.row_count,
        rows_done=0,
        rows_failed=0,
        start_time=utcnow(),
    )
    run.version = version
    session.add(run)
    await run_state.record_created(session, run, cause=str(who.user_id))
    await session.commit()
    batch = BatchInput(
        run_id=str(run.id),
        tenant_id=str(who.tenant_id),
        workflow_id=str(wf.id),
        workflow_name=wf.name,
        version_id=str(version.id),
        triggered_by=str(who.user_id),
        definition=defn,
        dataset_id=str(dataset.id),
        output_file_id=str(output_file.id),
        row_count=dataset.row_count,
        mini_batch_size=mini_batch_size,
        chunk_rows=settings.batch_chunk_rows,
        policy=node_policy(settings),
        subworkflows=subworkflows,
    )
    await start_execution(session, client, settings, run, wf, BatchWorkflow.run, batch, eager=eager)
    return run
