"""Human-in-the-loop and cancellation rules: paused lists, pause history, decisions, cancel."""

from __future__ import annotations

import asyncio
import hashlib
import json

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from core import access
from core.runs import get_run
from db import run_queries
from db.accounts import Principal
from db.models import Pause, Run, Workflow
from errors import BadRequest, Conflict
from run_status import RunStatus, is_terminal
from workflows.contracts import Decision
from workflows.run_workflow import RunWorkflow
from workflows.search_attributes import temporal_workflow_id


async def paused_runs(
    session: AsyncSession, who: Principal, page: int, page_size: int
) -> list[tuple[Run, Pause, Workflow]]:
    """PAUSED runs, newest first, each with its most recent open pause and its workflow."""
    return await run_queries.paused_page(session, who.tenant_id, page, page_size)


async def pause_history(session: AsyncSession, who: Principal, run_id: str) -> list[Pause]:
    run = await get_run(session, who, run_id)
    return await run_queries.pauses(session, run.id)


def _fingerprint(decision: Decision) -> str:
    body = json.dumps([decision.action.value, decision.inputs, decision.user_id], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _same_decision(pause: Pause, decision: Decision) -> bool:
    return (
        pause.resume_action == decision.action.value
        and pause.resume_user_id == decision.user_id
        and (pause.resume_inputs or {}) == decision.inputs
    )


async def decide(
    session: AsyncSession, client: Client, who: Principal, run_id: str, decision: Decision
) -> Run:
    """Deliver a decision as a Temporal update whose id is derived from the pause and the request.

    The identical request retried is answered with the run as it is now; a different decision on a
    pause already decided, or the loser of a race, gets Conflict.

    Raises:
        NotFound: unknown run. BadRequest: the run (or the named node) is not paused.
        Conflict: the pause was decided otherwise, or the run ended.
    """
    # Only the run's row is needed to route the decision; its tasks are read once it is applied.
    run = await get_run(session, who, run_id, details=False)
    access.ensure_may_change_run(who, run.triggered_by)
    if decision.node_id is not None:
        pause = await run_queries.latest_pause(session, run.id, node_id=decision.node_id)
    else:
        pause = await run_queries.earliest_open_pause(session, run.id)
        if pause is None:
            pause = await run_queries.latest_pause(session, run.id)
            # The identical request retried after its decision closed the pause (the run may still
            # be running the downstream) is answered as the first one was.
            retried = pause is not None and pause.resume_time is not None and _same_decision(pause, decision)
            if not retried and not is_terminal(run.status):
                raise BadRequest("Run is not in a paused state")
    if pause is None:
        if decision.node_id is not None:
            raise BadRequest(f"No paused task found for node '{decision.node_id}' in this run")
        raise BadRequest("Run is not in a paused state")
    if pause.resume_time is not None:
        if _same_decision(pause, decision):
            return await get_run(session, who, run.id)
        decided = f"{pause.resume_action} by {pause.resume_user_id}" if pause.resume_action else "closed"
        raise Conflict(f"This pause was already decided ({decided})")
    targeted = decision.model_copy(update={"node_id": pause.node_id})
    handle = client.get_workflow_handle_for(RunWorkflow.run, temporal_workflow_id(str(run.id)))
    try:
        # The SDK's stubs type an async handler's result as its coroutine: `_` keeps mypy from
        # asking for an await (the value is the handler's DecisionResult).
        _ = await handle.execute_update(
            RunWorkflow.decide,
            targeted,
            id=f"decide:{run.id}:{pause.node_id}:{pause.seq}:{_fingerprint(targeted)}",
        )
    except WorkflowUpdateFailedError as err:
        raise Conflict(f"Decision refused: {err.cause or err}") from err
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise Conflict("The run has already ended") from err
        raise
    return await get_run(session, who, run.id)


def _cannot_cancel(status: str) -> str:
    # PySpur's exact text, including the missing space and the enum prefix.
    return f"Run is in state RunStatus.{status} and cannot be canceled.Only PAUSED or RUNNING runs can be canceled."


async def cancel(
    session: AsyncSession, client: Client, who: Principal, run_id: str, wait_seconds: float = 10.0
) -> Run:
    """Cancel a RUNNING or PAUSED run through Temporal cancellation and wait (bounded) for CANCELED.

    Raises:
        NotFound: unknown run. BadRequest: any other state (PySpur's message).
    """
    run = await get_run(session, who, run_id)
    access.ensure_may_change_run(who, run.triggered_by)
    if run.status not in (RunStatus.RUNNING.value, RunStatus.PAUSED.value):
        raise BadRequest(_cannot_cancel(run.status))
    handle = client.get_workflow_handle(temporal_workflow_id(str(run.id)))
    try:
        await handle.cancel()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        run = await get_run(session, who, run.id)
        if is_terminal(run.status) or asyncio.get_running_loop().time() > deadline:
            return run
        await asyncio.sleep(0.05)
