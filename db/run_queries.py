"""Reads of runs with their tasks, pauses and workflows: one run of a tenant, and pages of runs loaded in
a constant number of statements (related rows are fetched for the whole page at once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer, joinedload, selectinload

from db.models import Pause, Run, Task, Workflow
from run_status import TERMINAL, RunStatus, TaskStatus


def _with_details(q: Select[Run]) -> Select[Run]:
    return q.options(selectinload(Run.tasks), selectinload(Run.version))


async def tenant_run(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    details: bool,
    lock: bool = False,
    inputs: bool = True,
) -> Run | None:
    """The run as stored now (a copy already in the session is refreshed), or None outside the tenant.

    `details` loads its tasks and pinned version; `lock` holds the row until the transaction ends;
    `inputs=False` leaves its initial inputs unread (decoding megabytes of JSON holds the event loop),
    for a caller that holds them: reading `initial_inputs` then fails."""
    q = select(Run).where(Run.id == run_id, Run.tenant_id == tenant_id)
    if not inputs:
        q = q.options(defer(Run.initial_inputs, raiseload=True))
    if details and not lock:
        # One row: its version joins in (one round trip fewer than a second SELECT ... IN). Not
        # under FOR UPDATE, which PostgreSQL refuses on the nullable side of an outer join.
        q = q.options(selectinload(Run.tasks), joinedload(Run.version))
    elif details:
        q = _with_details(q)
    if lock:
        q = q.with_for_update()
    return await session.scalar(q.execution_options(populate_existing=True))


async def paused_page(
    session: AsyncSession, tenant_id: uuid.UUID, page: int, page_size: int
) -> list[tuple[Run, Pause, Workflow]]:
    """PAUSED runs, newest first, each with its most recent open pause and its workflow; a run whose
    pause closed meanwhile is left out."""
    runs = (
        await session.scalars(
            _with_details(select(Run))
            .where(Run.tenant_id == tenant_id, Run.status == RunStatus.PAUSED.value)
            .order_by(Run.start_time.desc(), Run.id)
            .offset((page - 1) * page_size)
            .limit(page_size)
            .execution_options(populate_existing=True)
        )
    ).all()
    if not runs:
        return []
    open_pauses = await session.scalars(
        select(Pause)
        .where(Pause.run_id.in_([r.id for r in runs]), Pause.resume_time.is_(None))
        .ext(distinct_on(Pause.run_id))
        .order_by(Pause.run_id, Pause.seq.desc())
    )
    pauses = {p.run_id: p for p in open_pauses}
    workflows = await session.scalars(select(Workflow).where(Workflow.id.in_({r.workflow_id for r in runs})))
    by_id = {wf.id: wf for wf in workflows}
    return [
        (r, pauses[r.id], by_id[r.workflow_id]) for r in runs if r.id in pauses and r.workflow_id in by_id
    ]


async def list_runs(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    page: int,
    page_size: int,
    workflow_id: uuid.UUID | None = None,
    parent_only: bool = False,
    parent_run_id: uuid.UUID | None = None,
    run_type: str | None = None,
    status: RunStatus | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
) -> list[Run]:
    """A page of the tenant's runs, newest first, with their tasks and versions."""
    q = select(Run).where(Run.tenant_id == tenant_id)
    if workflow_id is not None:
        q = q.where(Run.workflow_id == workflow_id)
    if parent_only:
        q = q.where(Run.parent_run_id.is_(None))
    if parent_run_id is not None:
        q = q.where(Run.parent_run_id == parent_run_id)
    if run_type:
        q = q.where(Run.run_type == run_type)
    if status is not None:
        q = q.where(Run.status == status.value)
    if start_date is not None:
        q = q.where(Run.start_time >= start_date)
    if end_date is not None:
        q = q.where(Run.start_time <= end_date)
    q = q.order_by(Run.start_time.desc(), Run.id).offset((page - 1) * page_size).limit(page_size)
    return list((await session.scalars(_with_details(q))).all())


async def pauses(session: AsyncSession, run_id: uuid.UUID) -> list[Pause]:
    """The run's pause history, most recent first."""
    rows = await session.scalars(
        select(Pause).where(Pause.run_id == run_id).order_by(Pause.pause_time.desc(), Pause.seq.desc())
    )
    return list(rows)


async def latest_pause(
    session: AsyncSession, run_id: uuid.UUID, *, node_id: str | None = None, open_only: bool = False
) -> Pause | None:
    """The run's most recent pause (of `node_id`; still open, with `open_only`)."""
    q = select(Pause).where(Pause.run_id == run_id)
    if node_id is not None:
        q = q.where(Pause.node_id == node_id)
    if open_only:
        q = q.where(Pause.resume_time.is_(None))
    return await session.scalar(q.order_by(Pause.seq.desc()))


async def earliest_open_pause(session: AsyncSession, run_id: uuid.UUID) -> Pause | None:
    return await session.scalar(
        select(Pause).where(Pause.run_id == run_id, Pause.resume_time.is_(None)).order_by(Pause.seq)
    )


async def status_and_busy(session: AsyncSession, run_id: uuid.UUID) -> tuple[str | None, bool]:
    """The run's stored status, and whether any of its tasks is RUNNING."""
    status = await session.scalar(select(Run.status).where(Run.id == run_id))
    busy = await session.scalar(
        select(Task.id).where(Task.run_id == run_id, Task.status == TaskStatus.RUNNING.value).limit(1)
    )
    return status, busy is not None


async def stored_status(session: AsyncSession, run_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Run.status).where(Run.id == run_id))


async def has_unfinished_child(session: AsyncSession, run_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Run.id)
        .where(Run.parent_run_id == run_id, Run.status.not_in([s.value for s in TERMINAL]))
        .limit(1)
    )
    return found is not None


async def delete_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    await session.execute(delete(Run).where(Run.id == run_id))


async def locked_run(session: AsyncSession, run_id: uuid.UUID) -> Run:
    """The run (known to exist), locked until the transaction ends."""
    run = await session.scalar(select(Run).where(Run.id == run_id).with_for_update())
    assert run is not None
    return run


async def completed_outputs(session: AsyncSession, run_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """`{node_id: outputs}` of the run's top-level tasks that completed."""
    rows = await session.execute(
        select(Task.node_id, Task.outputs).where(
            Task.run_id == run_id, Task.scope == "", Task.status == TaskStatus.COMPLETED.value
        )
    )
    return {node_id: dict(outputs) for node_id, outputs in rows.all() if outputs is not None}


async def open_runs_page(
    session: AsyncSession, *, started_before: datetime, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[tuple[uuid.UUID, datetime]]:
    """`(id, start_time)` of open runs with an execution, started before `started_before`, in
    `(start_time, id)` order after `after`: the reconciler's page of runs to check against Temporal."""
    q = select(Run.id, Run.start_time).where(
        Run.status.in_([RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED]),
        Run.draft_state.is_(None),  # a v1 draft has no execution yet
        Run.start_time < started_before,
    )
    if after is not None:
        q = q.where(tuple_(Run.start_time, Run.id) > tuple_(*after))
    rows = await session.execute(q.order_by(Run.start_time, Run.id).limit(limit))
    return [(run_id, start_time) for run_id, start_time in rows.all()]


async def recently_stopped(
    session: AsyncSession, *, ended_after: datetime, limit: int
) -> list[tuple[uuid.UUID, datetime]]:
    """`(id, end_time)` of runs stopped (CANCELED) since `ended_after`, newest first."""
    q = (
        select(Run.id, Run.end_time)
        .where(Run.status == RunStatus.CANCELED.value, Run.end_time > ended_after)
        .order_by(Run.end_time.desc())
        .limit(limit)
    )
    return [(run_id, end) for run_id, end in (await session.execute(q)).all() if end is not None]
