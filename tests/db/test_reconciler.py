"""The reconciler on real Temporal and PostgreSQL, without HTTP: a run whose execution closed without
its terminal write (here: timed out, as a run over its maximum duration does) is repaired once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.reconciler import Cursor, reconcile_once
from db.models import Run, RunStateHistory, utcnow
from run_status import CLOSED_EXECUTION, Cause, RunStatus
from tests.conftest import Stack, Tenant, wait_until
from tests.db.conftest import make_run
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]


async def _timed_out_execution(client: Client, run_id: uuid.UUID) -> None:
    """An execution of the run that Temporal times out: on a task queue no worker polls, with a
    one-second execution timeout (the bound a definition's max_run_duration_seconds sets)."""
    handle = await client.start_workflow(
        "RunWorkflow",
        id=temporal_workflow_id(str(run_id)),
        task_queue=f"nobody-{uuid.uuid4().hex}",
        execution_timeout=timedelta(seconds=1),
    )

    async def timed_out() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.TIMED_OUT

    await wait_until(timed_out, within=30, interval=0.2)


async def _sweep(db: Sessions, client: Client) -> None:
    """Every open run once, page by page: runs other tests left open share this database."""
    cursor = Cursor()
    await reconcile_once(db, client, grace=timedelta(0), cursor=cursor)
    while cursor.after is not None:
        await reconcile_once(db, client, grace=timedelta(0), cursor=cursor)


async def test_a_run_whose_execution_timed_out_is_failed_with_the_maximum_duration_error(
    db: Sessions, stack: Stack, tenant: Tenant
) -> None:
    # Started now: the worker's own reconciler (30 s grace) leaves it to this one (no grace).
    run_id = await make_run(db, tenant, RunStatus.RUNNING, start_time=utcnow())
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    await _timed_out_execution(client, run_id)

    await _sweep(db, client)
    await _sweep(db, client)  # a second sweep changes nothing

    async with db() as session:
        run = await session.get(Run, run_id)
        assert run is not None
        moves = (
            await session.execute(
                select(RunStateHistory.from_state, RunStateHistory.to_state, RunStateHistory.cause).where(
                    RunStateHistory.run_id == run_id
                )
            )
        ).all()
    status, error = CLOSED_EXECUTION["TIMED_OUT"]
    assert status == RunStatus.FAILED and "maximum duration" in error
    assert (run.status, run.error, run.end_time is not None) == ("FAILED", error, True)
    assert [tuple(m) for m in moves] == [("RUNNING", "FAILED", Cause.RECONCILER)]
