"""Repairs runs whose Temporal execution closed without the terminal write (terminated, timed out, lost).

Run periodically by every worker; the guarded transition makes concurrent reconcilers harmless.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from db import run_queries
from db.models import utcnow
from db.run_state import set_run_state
from run_status import CLOSED_EXECUTION, Cause, RunStatus
from telemetry.metrics import get_metrics
from workflows.contracts import RunResult
from workflows.search_attributes import temporal_workflow_id

log = logging.getLogger(__name__)

# Workflow-task attempts after which a failing execution counts as stuck: Temporal retries a failed
# workflow task with growing backoff, and a failure that outlasts eight attempts is not a passing one.
WORKFLOW_TASK_FAILURES = 8


@dataclass
class Cursor:
    """Where the next pass resumes, so runs paused for weeks cannot crowd out newer ones."""

    after: tuple[datetime, uuid.UUID] | None = None
    # Runs seen with their workflow task being retried during the current pass over all open runs.
    retrying: set[uuid.UUID] = field(default_factory=set)


async def reconcile_once(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    *,
    grace: timedelta = timedelta(seconds=30),
    limit: int = 200,
    cursor: Cursor | None = None,
    task_failures: int = WORKFLOW_TASK_FAILURES,
) -> int:
    """Check up to `limit` open runs older than `grace` against Temporal, continuing after
    `cursor` (and wrapping around); returns how many were repaired. An execution whose workflow task
    has failed `task_failures` times in a row is ended and its run failed (see `_stuck`)."""
    cursor = cursor or Cursor()
    async with sessions() as session:
        rows = await run_queries.open_runs_page(
            session, started_before=utcnow() - grace, after=cursor.after, limit=limit
        )
    cursor.after = (rows[-1][1], rows[-1][0]) if len(rows) == limit else None
    repaired = 0
    for run_id, _ in rows:
        try:
            repaired += await _repair(sessions, client, run_id, task_failures, cursor.retrying)
        except Exception:  # one unreachable run must not stop the pass
            log.exception("could not reconcile run %s", run_id)
    if cursor.after is None:  # every open run has been looked at since the last time
        get_metrics().workflow_tasks_retrying.set(len(cursor.retrying))
        cursor.retrying.clear()
    return repaired


async def repair(sessions: async_sessionmaker[AsyncSession], client: Client, run_id: uuid.UUID) -> int:
    """Check one run against its execution now (the admin CLI's `reconcile RUN_ID`); 1 if repaired."""
    return await _repair(sessions, client, run_id, WORKFLOW_TASK_FAILURES, set())


async def temporal_status(client: Client, run_id: uuid.UUID) -> RunStatus | None:
    """The status Temporal's record gives a run (None while its execution is open), repairing and
    ending nothing: for checks that compare the database with Temporal (the chaos soak)."""
    verdict = await _verdict(client, run_id, task_failures=sys.maxsize, retrying=set())
    return None if verdict is None else verdict[0]


async def _repair(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    run_id: uuid.UUID,
    task_failures: int,
    retrying: set[uuid.UUID],
) -> int:
    verdict = await _verdict(client, run_id, task_failures, retrying)
    if verdict is None:
        return 0
    status, error, outputs = verdict
    extra = {"outputs": outputs} if outputs is not None else {}
    async with sessions() as session, session.begin():
        # The hooks cancel its unsettled tasks, close its open pauses and store a v1 run's outputs.
        moved = await set_run_state(
            session,
            run_id,
            status=status,
            cause=Cause.RECONCILER,
            reason=error,
            fields={"error": error, "end_time": utcnow(), **extra},
            outputs=outputs,
        )
        if not moved.accepted:
            # Usually the run's own terminal write landed since the verdict: nothing to repair.
            log.info("run %s left as it is: %s", run_id, moved.refusal)
            return 0
    get_metrics().reconciler_repairs.labels(status.value).inc()
    log.warning("reconciled run %s to %s: %s", run_id, status, error)
    return 1


async def _verdict(
    client: Client, run_id: uuid.UUID, task_failures: int, retrying: set[uuid.UUID]
) -> tuple[RunStatus, str, dict[str, Any] | None] | None:
    handle = client.get_workflow_handle(temporal_workflow_id(str(run_id)), result_type=RunResult)
    try:
        desc = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return RunStatus.FAILED, "Run was never started in Temporal", None
        raise
    if desc.status is None or desc.status == WorkflowExecutionStatus.RUNNING:
        stuck = await _stuck(client, handle, desc, task_failures)
        if stuck is None:
            if desc.raw_description.pending_workflow_task.attempt > 1:
                retrying.add(run_id)
            return None
        return RunStatus.FAILED, stuck, None
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        try:
            result = await handle.result()
        except WorkflowFailureError:
            return RunStatus.FAILED, "Run failed", None
        # A large run's result carries only its OutputNodes' outputs: then the stored ones stay.
        return result.status, result.error or "", result.outputs if result.outputs_complete else None
    status, error = CLOSED_EXECUTION.get(
        desc.status.name, (RunStatus.FAILED, f"Temporal status {desc.status.name}")
    )
    return status, error, None


async def _stuck(
    client: Client, handle: WorkflowHandle[Any, Any], desc: WorkflowExecutionDescription, task_failures: int
) -> str | None:
    """Why an open execution is stuck, having ended it; None when it is not.

    A workflow task that fails (a payload the workflow code cannot handle, a bug) is retried by
    Temporal for ever while the run looks RUNNING. After `task_failures` attempts whose last recorded
    outcome is a failure (not a timeout, which a worker's restart causes), the execution is terminated
    and the run fails with the failure's message, so the database and Temporal agree and the run is
    not left looping silently.
    """
    pending = desc.raw_description.pending_workflow_task
    if not desc.raw_description.HasField("pending_workflow_task") or pending.attempt < task_failures:
        return None
    failure = await _last_task_failure(client, handle.id)
    if failure is None:
        return None
    reason = f"The workflow task failed {pending.attempt} times: {failure}"[:2000]
    log.warning("run execution %s is stuck; terminating it: %s", handle.id, reason)
    try:
        await handle.terminate(reason=reason[:500])
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    get_metrics().workflow_task_failures_ended.inc()
    return reason


async def _last_task_failure(client: Client, workflow_id: str) -> str | None:
    """The message of the last workflow-task failure, if the last workflow-task outcome is one."""
    resp = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id),
            maximum_page_size=50,
        )
    )
    for event in resp.history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failure = event.workflow_task_failed_event_attributes.failure
            return failure.message or "unknown failure"
        if event.event_type in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        ):
            return None
    return None


async def cancel_stopped(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    *,
    window: timedelta = timedelta(minutes=15),
    limit: int = 100,
) -> int:
    """Cancel the executions of runs stopped in the database that are still open (the cancel sent
    by the stop did not arrive, e.g. Temporal was away); returns how many were sent."""
    async with sessions() as session:
        stopped = await run_queries.recently_stopped(session, ended_after=utcnow() - window, limit=limit)
    sent = 0
    for run_id, stopped_at in stopped:
        handle = client.get_workflow_handle(temporal_workflow_id(str(run_id)))
        try:
            desc = await handle.describe()
            # Only the execution the stop was meant for: one started after it is the run's retry or
            # resume (started between this pass's read and now), which must not be canceled (the
            # chaos soak saw a retried run end CANCELED so).
            if desc.status == WorkflowExecutionStatus.RUNNING and desc.start_time < stopped_at:
                await client.get_workflow_handle(handle.id, run_id=desc.run_id).cancel()
                sent += 1
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                log.warning("could not cancel the execution of stopped run %s: %s", run_id, err)
    return sent


async def reconcile_forever(
    sessions: async_sessionmaker[AsyncSession], client: Client, interval: float, grace: timedelta
) -> None:
    cursor = Cursor()
    while True:
        try:
            await reconcile_once(sessions, client, grace=grace, cursor=cursor)
            await cancel_stopped(sessions, client)
        except Exception:  # a reconciler pass must never kill the worker; the next pass retries
            log.exception("reconcile pass failed")
        await asyncio.sleep(interval)
