"""v1 run threads: which runs make up each thread (`v1_thread_runs`), and what their messages are read from."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db import v1_repo as v1
from db.models import Folder, Pause, Run, V1ThreadRun


def primary_thread_id(run_id: uuid.UUID) -> uuid.UUID:
    """A run's own thread, opened by its Start (derived, so retries and racing starts agree)."""
    return v1.derived_id(run_id, "thread")


async def join(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, thread_id: uuid.UUID) -> None:
    """Make the run part of the thread; a run already in a thread stays in it."""
    await session.execute(
        insert(V1ThreadRun)
        .values(run_id=run_id, thread_id=thread_id, tenant_id=tenant_id)
        .on_conflict_do_nothing(index_elements=["run_id"])
    )


async def lock_thread(session: AsyncSession, thread_id: uuid.UUID) -> None:
    """A transaction-scoped lock on the thread: who may add a run to it is decided one at a time."""
    await session.execute(select(func.pg_advisory_xact_lock(thread_id.int & (2**63 - 1))))


async def discard_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    """Delete a draft that never started (its folders go with it)."""
    await session.execute(delete(Run).where(Run.id == run_id, Run.draft_state.is_not(None)))


async def threads_of(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    rows = await session.execute(
        select(V1ThreadRun.run_id, V1ThreadRun.thread_id).where(V1ThreadRun.run_id.in_(run_ids))
    )
    return {row.run_id: row.thread_id for row in rows}


async def thread_runs(session: AsyncSession, tenant_id: uuid.UUID, thread_id: uuid.UUID) -> list[Run]:
    """The thread's runs, oldest first (empty: no such thread in the tenant)."""
    rows = await session.scalars(
        select(Run)
        .join(V1ThreadRun, V1ThreadRun.run_id == Run.id)
        .where(V1ThreadRun.thread_id == thread_id, V1ThreadRun.tenant_id == tenant_id)
        .order_by(Run.created_at, Run.id)
    )
    return list(rows.all())


async def pauses(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Pause]]:
    found: dict[uuid.UUID, list[Pause]] = defaultdict(list)
    for p in (
        await session.scalars(select(Pause).where(Pause.run_id.in_(run_ids)).order_by(Pause.seq))
    ).all():
        found[p.run_id].append(p)
    return found


async def list_thread_ids(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    run_id: uuid.UUID | None,
    triggered_by: uuid.UUID | None,
    sort_dir: str,
    limit: int,
    offset: int,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[uuid.UUID], int]:
    """Threads with `run_id` in them, or (no run) the threads whose first run `triggered_by` started."""
    q = (
        select(V1ThreadRun.thread_id, func.min(V1ThreadRun.created_at).label("opened"))
        .join(Run, Run.id == V1ThreadRun.run_id)
        .where(V1ThreadRun.tenant_id == tenant_id)
        .group_by(V1ThreadRun.thread_id)
    )
    if run_id is not None:
        q = q.having(func.bool_or(V1ThreadRun.run_id == run_id))
    if triggered_by is not None:
        q = q.having(func.bool_or(Run.triggered_by == triggered_by))
    if created_after is not None:
        q = q.having(func.min(V1ThreadRun.created_at) >= created_after)
    if created_before is not None:
        q = q.having(func.min(V1ThreadRun.created_at) < created_before)
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    opened = q.selected_columns.opened
    q = q.order_by(opened.desc() if sort_dir == "DESC" else opened.asc()).limit(limit).offset(offset)
    return [r[0] for r in (await session.execute(q)).all()], total


async def run_by_path_part(
    session: AsyncSession, tenant_id: uuid.UUID, path_part_id: uuid.UUID
) -> Run | None:
    """The run whose path part, or whose discussions/ folder, this is."""
    by_own = await session.scalar(
        select(Run).where(Run.tenant_id == tenant_id, Run.path_part_id == path_part_id)
    )
    if by_own is not None:
        return by_own
    return await session.scalar(
        select(Run)
        .join(Folder, Folder.run_id == Run.id)
        .where(Run.tenant_id == tenant_id, Folder.path_part_id == path_part_id, Folder.role == "discussions")
    )
