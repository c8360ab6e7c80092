"""PySpur run rules: create and start, run one node (partial), wait for a blocking run, read, delete."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from core import access, offload, run_waiters
from core.run_start import check_payload, engine_input, node_policy, start_execution
from core.stored_workflows import get_workflow
from core.workflow_versions import parse_id, resolve_subworkflows, version_for_run
from db import run_queries, run_state
from db.accounts import Principal
from db.models import Run, utcnow
from errors import BadRequest, Conflict, InvalidInput, NotFound
from run_status import RunStatus, TaskStatus, is_terminal
from settings import Settings
from workflows import graph, nodes
from workflows.contracts import RunInput, RunResult
from workflows.definition import WorkflowDefinition
from workflows.run_workflow import RunWorkflow
from workflows.search_attributes import temporal_workflow_id


def _run_inputs(
    defn: WorkflowDefinition, initial_inputs: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    graph.check_size(defn)  # a graph stored before the limits existed
    plan = graph.GraphPlan.build(defn)
    input_node = plan.by_id[plan.input_node_id]
    # Keyed by the node's id, or by its title as PySpur's editor keys a partial run's inputs.
    key = next((k for k in (input_node.id, input_node.title) if k in (initial_inputs or {})), None)
    if initial_inputs is None or key is None:
        raise InvalidInput(f"initial_inputs must contain an entry for the input node '{input_node.id}'")
    typed = nodes.convert_run_inputs(input_node, initial_inputs[key])
    return input_node.id, nodes.validate_run_inputs(input_node, typed)


def _checked_inputs(
    stored: dict[str, Any], initial_inputs: dict[str, Any] | None
) -> tuple[WorkflowDefinition, tuple[str, dict[str, Any]]]:
    defn = WorkflowDefinition.model_validate(stored)
    graph.validate_definition(defn)  # a stored draft may not run
    return defn, _run_inputs(defn, initial_inputs)


async def start_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    workflow_id: str,
    initial_inputs: dict[str, Any] | None,
    *,
    run_type: str = "interactive",
    parent_run_id: str | None = None,
    eager: bool = False,
    run_id: uuid.UUID | None = None,
) -> Run:
    """Create the run row (PENDING) and its Temporal execution (`run_id`: the new run's id, chosen by
    a caller that must know it before the execution starts).

    Raises:
        NotFound: unknown workflow or parent run.
        InvalidDefinition: the workflow, or one it runs, has a problem; no run is created.
        InvalidInput: inputs missing or not matching the InputNode; no run is created.
        PayloadTooLarge: the run's input is over Temporal's size limit; no run is created.
        Unavailable: Temporal refused the start; the run is stored FAILED, never left PENDING.
    """
    wf = await get_workflow(session, who, workflow_id)
    defn, (input_id, payload) = await offload.run(
        offload.is_large(wf.definition), _checked_inputs, wf.definition, initial_inputs
    )
    subworkflows = await resolve_subworkflows(session, who.tenant_id, defn, wf, pin=True)
    parent = await get_run(session, who, parent_run_id, details=False) if parent_run_id else None
    version = await version_for_run(session, wf)
    run = Run(
        id=run_id or uuid.uuid4(),
        tenant_id=who.tenant_id,
        workflow_id=wf.id,
        workflow_version_id=version.id,
        parent_run_id=parent.id if parent else None,
        triggered_by=who.user_id,
        status=RunStatus.PENDING.value,
        run_type=run_type,
        initial_inputs={input_id: payload},
        start_time=utcnow(),
    )
    run.version = version
    run_input = engine_input(run, wf, defn, payload, settings, subworkflows)
    check_payload(client, settings, run_input)  # before the row: a refused start stores nothing
    session.add(run)
    await run_state.record_created(session, run, cause=str(who.user_id))
    await session.commit()
    await start_execution(session, client, settings, run, wf, RunWorkflow.run, run_input, eager=eager)
    return run


async def run_partial(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    workflow_id: str,
    node_id: str,
    initial_inputs: dict[str, Any] | None,
    partial_outputs: dict[str, Any] | None,
) -> dict[str, Any]:
    """Run one node of the current definition, with given outputs for upstream nodes; nothing is stored.
    Nodes are named by id or title (`node_id`, the keys of `partial_outputs` and `initial_inputs`).

    Returns `{node_id: outputs}` of the precomputed, executed upstream and target nodes.

    Raises:
        NotFound: unknown workflow.
        InvalidDefinition: the workflow, or one it runs, has a problem.
        InvalidInput: unknown node, malformed precomputed outputs or inputs, or a human step to execute.
        BadRequest: a node failed (its error is named) or the run did not finish in time.
    """
    wf = await get_workflow(session, who, workflow_id)
    defn = WorkflowDefinition.model_validate(wf.definition)
    graph.validate_definition(defn)  # a stored draft may not run, not even in part
    top = {n.id: n for n in defn.nodes if n.parent_id is None}
    plan = graph.GraphPlan.build(defn)
    # Node references are ids or titles (the editor's ▶ sends titles, and outputs keyed by title).
    node_id = graph.node_by_reference(defn, node_id, "Node")
    # The editor sends every output on screen, the target's and its downstream's included: not inputs.
    not_inputs = {node_id, *plan.descendants(node_id)}
    precomputed: dict[str, dict[str, Any]] = {}
    for ref, output in (partial_outputs or {}).items():
        nid = graph.node_by_reference(defn, ref, "partial_outputs names")
        if nid in not_inputs:
            continue
        if not isinstance(output, dict):
            raise InvalidInput(f"partial_outputs['{ref}'] must be an object of output fields")
        precomputed[nid] = output
    include = graph.partial_run_nodes(defn, node_id, set(precomputed))
    waits = [nid for nid in include if nid not in precomputed and graph.waits_for_person(defn, top[nid])]
    if waits:
        raise InvalidInput(
            f"A partial run cannot wait for a person: give precomputed outputs for '{waits[0]}'"
        )
    subworkflows = await resolve_subworkflows(session, who.tenant_id, defn, wf, pin=False)
    calls = any(nid not in precomputed and nodes.kind_of(top[nid].node_type).runs_child for nid in include)
    reachable = [s.definition for s in subworkflows.values()] if calls else []
    human = graph.human_step(reachable)
    if human is not None:
        raise InvalidInput(f"A partial run cannot wait for a person: a subworkflow it runs has '{human}'")
    if plan.input_node_id in precomputed:
        payload = precomputed[plan.input_node_id]
    else:
        _, payload = _run_inputs(defn, initial_inputs)
    run_id = str(uuid.uuid4())
    handle = await client.start_workflow(
        RunWorkflow.run,
        RunInput(
            run_id=run_id,
            tenant_id=str(who.tenant_id),
            workflow_id=str(wf.id),
            workflow_name=wf.name,
            definition=defn,
            input_payload=payload,
            policy=node_policy(settings),
            precomputed=precomputed,
            target_node_id=node_id,
            persist=False,
            subworkflows=subworkflows,
            triggered_by=str(who.user_id),
        ),
        id=f"partial-{run_id}",
        task_queue=settings.temporal_task_queue,
        memo={"workflow_name": wf.name, "workflow_id": str(wf.id), "run_type": "partial"},
    )
    try:
        result = await asyncio.wait_for(handle.result(), settings.run_blocking_timeout_seconds)
    except TimeoutError:
        with contextlib.suppress(RPCError):
            await handle.cancel()
        raise BadRequest(
            f"The partial run did not finish within {settings.run_blocking_timeout_seconds:g} s"
        ) from None
    if result.status != RunStatus.COMPLETED:
        raise BadRequest(result.error or f"The partial run ended {result.status.value}")
    if not result.outputs_complete:
        raise BadRequest("The partial run's outputs exceed 1 MB together, too large to return at once")
    return {**precomputed, **result.outputs}


def may_pause(run: Run) -> bool:
    """Whether the run's graph has a human step (only then is it worth watching for a pause)."""
    nodes_ = (run.version.definition if run.version is not None else {}).get("nodes", [])
    return any(nodes.kind_of(n.get("node_type")).pauses for n in nodes_)


async def wait_until_settled(
    session: AsyncSession,
    client: Client,
    run_id: uuid.UUID,
    wait_seconds: float,
    *,
    watch_pause: bool,
    here: run_waiters.Waiter | None = None,
) -> RunResult | None:
    """Wait for the run's result, but stop early once it is paused with nothing else running.

    Returns the result when the run closed normally, else None (paused, failed, or still going).
    Pauses are watched in the database (with backoff) only when `watch_pause`: polling every waiting
    request costs real CPU under load. `here` (`run_waiters.expect`) answers as soon as this process
    commits the run's terminal write, whichever of it and Temporal's long poll comes first."""
    result = asyncio.create_task(_first_result(client, run_id, wait_seconds, here))
    if not watch_pause:
        return await result
    interval = 0.05
    try:
        while True:
            done, _ = await asyncio.wait({result}, timeout=interval)
            interval = min(interval * 2, 1.0)
            if done:
                return result.result()
            status, busy = await run_queries.status_and_busy(session, run_id)
            # End the read transaction (commit does not expire loaded rows) so the next poll sees new commits.
            await session.commit()
            # Paused, and every branch that does not wait on a person has finished (as PySpur returns).
            if status == RunStatus.PAUSED.value and not busy:
                return None
    finally:
        result.cancel()


def outputs_so_far(run: Run) -> dict[str, Any]:
    """`{node_id: outputs}` of settled nodes; a paused node shows its pass-through input, as PySpur."""
    if run.outputs is not None:
        return dict(run.outputs)
    shown = (TaskStatus.COMPLETED.value, TaskStatus.PAUSED.value)
    return {t.node_id: t.outputs for t in run.tasks if t.status in shown and t.outputs is not None}


_POLL_FALLBACK_SECONDS = 1.0


async def _first_result(
    client: Client,
    run_id: uuid.UUID,
    wait_seconds: float,
    here: run_waiters.Waiter | None,
) -> RunResult | None:
    if here is None:
        return await wait_for_result(client, run_id, wait_seconds)
    if here.started_here:
        # The terminal write almost surely happens in this process: Temporal's long poll (an RPC,
        # and server work per run) is only a fallback, asked for if the write is slow in coming.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(here.recorded), _POLL_FALLBACK_SECONDS)
    if not here.recorded.done():
        polled = asyncio.create_task(wait_for_result(client, run_id, wait_seconds))
        try:
            either: list[asyncio.Future[Any]] = [polled, here.recorded]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            polled.cancel()
        if not here.recorded.done():
            return polled.result()
    outputs = here.recorded.result()
    # Not COMPLETED: the caller reads how it ended from the database.
    if outputs is None:
        return None
    return RunResult(run_id=str(run_id), status=RunStatus.COMPLETED, outputs=outputs)


async def wait_for_result(client: Client, run_id: uuid.UUID, wait_seconds: float) -> RunResult | None:
    """The run's result once it closes; None if it is still going after `wait_seconds` or did not complete."""
    handle = client.get_workflow_handle_for(RunWorkflow.run, temporal_workflow_id(str(run_id)))
    try:
        return await asyncio.wait_for(handle.result(), wait_seconds)
    except (TimeoutError, WorkflowFailureError):
        return None


async def get_run(
    session: AsyncSession,
    who: Principal,
    run_id: str | uuid.UUID,
    *,
    missing: str = "Run not found",
    details: bool = True,
    lock: bool = False,
    inputs: bool = True,
) -> Run:
    """A run of the caller's tenant as stored now; `details` loads its tasks and pinned version,
    `inputs=False` leaves its initial inputs unread (see `run_queries.tenant_run`).

    Raises:
        NotFound(missing): no such run in the tenant (each surface words it its own way).
    """
    run = await run_queries.tenant_run(
        session, who.tenant_id, parse_id(run_id, "Run"), details=details, lock=lock, inputs=inputs
    )
    if run is None:
        raise NotFound(missing)
    return run


async def delete_run(session: AsyncSession, who: Principal, run_id: str) -> None:
    run = await get_run(session, who, run_id, details=False)
    access.ensure_may_change_run(who, run.triggered_by)
    if not is_terminal(run.status):
        raise Conflict(f"Run is {run.status}; only finished runs can be deleted")
    if await run_queries.has_unfinished_child(session, run.id):
        raise Conflict("The run has child runs that have not finished")
    await run_queries.delete_run(session, run.id)
