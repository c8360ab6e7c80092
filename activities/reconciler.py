"""Repairs runs whose Temporal execution closed without the terminal write (terminated, timed out, lost).

Run periodically by every worker; the guarded transition makes concurrent reconcilers harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from db.models import Run, utcnow
from db.run_state import set_run_state
from run_status import CLOSED_EXECUTION, Cause, RunStatus
from telemetry.metrics import get_metrics
from workflows.contracts import RunResult
from workflows.search_attributes import temporal_workflow_id

log = logging.getLogger(__name__)


@dataclass
class Cursor:
    """Where the next pass resumes, so runs paused for weeks cannot crowd out newer ones."""

    after: tuple[datetime, uuid.UUID] | None = None


async def reconcile_once(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    *,
    grace: timedelta = timedelta(seconds=30),
    limit: int = 200,
    cursor: Cursor | None = None,
) -> int:
    """Check up to `limit` open runs older than `grace` against Temporal, continuing after
    `cursor` (and wrapping around); returns how many were repaired."""
    cursor = cursor or Cursor()
    q = select(Run.id, Run.start_time).where(
        Run.status.in_([RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED]),
        Run.draft_state.is_(None),  # a v1 draft has no execution yet
        Run.start_time < utcnow() - grace,
    )
    if cursor.after is not None:
        q = q.where(tuple_(Run.start_time, Run.id) > tuple_(*cursor.after))
    async with sessions() as session:
        rows = (await session.execute(q.order_by(Run.start_time, Run.id).limit(limit))).all()
    cursor.after = (rows[-1][1], rows[-1][0]) if len(rows) == limit else None
    repaired = 0
    for run_id, _ in rows:
        try:
            repaired += await _repair(sessions, client, run_id)
        except Exception:  # one unreachable run must not stop the pass
            log.exception("could not reconcile run %s", run_id)
    return repaired


async def repair(sessions: async_sessionmaker[AsyncSession], client: Client, run_id: uuid.UUID) -> int:
    """Check one run against its execution now (the admin CLI's `reconcile RUN_ID`); 1 if repaired."""
    return await _repair(sessions, client, run_id)


async def _repair(sessions: async_sessionmaker[AsyncSession], client: Client, run_id: uuid.UUID) -> int:
    verdict = await _verdict(client, run_id)
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
            return 0
    get_metrics().reconciler_repairs.labels(status.value).inc()
    log.warning("reconciled run %s to %s: %s", run_id, status, error)
    return 1


async def _verdict(client: Client, run_id: uuid.UUID) -> tuple[RunStatus, str, dict[str, Any] | None] | None:
    handle = client.get_workflow_handle(temporal_workflow_id(str(run_id)), result_type=RunResult)
    try:
        desc = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return RunStatus.FAILED, "Run was never started in Temporal", None
        raise
    if desc.status is None or desc.status == WorkflowExecutionStatus.RUNNING:
        return None
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


async def cancel_stopped(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    *,
    window: timedelta = timedelta(minutes=15),
    limit: int = 100,
) -> int:
    """Cancel the executions of runs stopped in the database that are still open (the cancel sent
    by the stop did not arrive, e.g. Temporal was away); returns how many were sent."""
    q = (
        select(Run.id)
        .where(Run.status == RunStatus.CANCELED.value, Run.end_time > utcnow() - window)
        .order_by(Run.end_time.desc())
        .limit(limit)
    )
    async with sessions() as session:
        run_ids = list(await session.scalars(q))
    sent = 0
    for run_id in run_ids:
        handle = client.get_workflow_handle(temporal_workflow_id(str(run_id)))
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.cancel()
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
