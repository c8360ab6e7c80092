"""v1 run reads: the tenant-wide and per-definition lists (ksapi's filters) and the summary, in SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, nulls_last, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import is_admin
from db import v1_repo as v1
from db.accounts import Principal
from db.models import Run, V1Definition, Workflow, utcnow


@dataclass
class RunFilters:
    states: list[str] | None = None
    mine: bool | None = None
    approvable_by_me: bool | None = None
    definition_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    sort_by: str = "STARTED_AT"
    sort_dir: str | None = None
    limit: int = 20
    offset: int = 0
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    approval_states: list[str] | None = None
    include_tag_ids: list[uuid.UUID] | None = None


def _filtered(who: Principal, f: RunFilters) -> Select[Run]:
    q = select(Run).where(Run.tenant_id == who.tenant_id)
    if f.states:
        q = q.where(v1.execution_state_sql().in_(f.states))
    if f.mine:
        q = q.where(Run.triggered_by == who.user_id)
    elif f.owner_id is not None:
        q = q.where(Run.triggered_by == f.owner_id)
    if f.approvable_by_me:
        # Runs that entered approval (completed under `approval_required`); owners and admins approve.
        entered = Run.approval_state != "not_required"
        q = q.where(entered if is_admin(who) else Run.id.is_(None))
    if f.definition_id is not None:
        q = q.where(Run.workflow_id == f.definition_id)
    if f.approval_states:
        q = q.where(Run.approval_state.in_(f.approval_states))
    if f.include_tag_ids:
        q = q.where(Run.id.is_(None))  # nothing is tagged
    for column, after, before in (
        (Run.created_at, f.created_after, f.created_before),
        (Run.updated_at, f.updated_after, f.updated_before),
    ):
        if after is not None:
            q = q.where(column >= after)
        if before is not None:
            q = q.where(column < before)
    return q


async def list_runs(session: AsyncSession, who: Principal, f: RunFilters) -> tuple[list[Run], int]:
    q = _filtered(who, f)
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    # The same rule as the presenter's `started_at`: null for drafts and v1 runs that never started.
    # (A snapshot may be stored as SQL NULL or as JSON null.)
    no_snapshot = func.coalesce(func.jsonb_typeof(Run.snapshot), "null") == "null"
    never_started = or_(Run.draft_state.is_not(None), and_(Run.v1.is_(True), no_snapshot))
    started_at = case((never_started, None), else_=Run.start_time)
    column = {"CREATED_AT": Run.created_at, "COMPLETED_AT": Run.end_time}.get(f.sort_by, started_at)
    desc = (f.sort_dir or "DESC") == "DESC"
    order = nulls_last(column.desc() if desc else column.asc())
    rows = await session.scalars(
        q.order_by(order, Run.created_at.desc(), Run.id).limit(f.limit).offset(f.offset)
    )
    return list(rows.all()), total


async def summary(
    session: AsyncSession,
    who: Principal,
    since: datetime | None,
    until: datetime | None,
    definition_id: uuid.UUID | None,
) -> dict[str, Any]:
    """Aggregates over runs created in the window (default: the last 7 days), computed in SQL."""
    now = utcnow()
    start = since or now - timedelta(days=7)
    window = [Run.tenant_id == who.tenant_id, Run.created_at >= start]
    if until is not None:
        window.append(Run.created_at < until)
    if definition_id is not None:
        window.append(Run.workflow_id == definition_id)
    state = v1.execution_state_sql()
    counts = dict.fromkeys(v1.EXECUTION_STATES, 0)
    for name, n in (await session.execute(select(state, func.count()).where(*window).group_by(state))).all():
        counts[name] = int(n)
    seconds = func.extract("epoch", Run.end_time - Run.start_time)
    p50, p95, total, triggerers = (
        await session.execute(
            select(
                func.percentile_cont(0.5).within_group(seconds).filter(state.in_([v1.COMPLETED, v1.FAILED])),
                func.percentile_cont(0.95).within_group(seconds).filter(state.in_([v1.COMPLETED, v1.FAILED])),
                func.count(),
                func.count(func.distinct(Run.triggered_by)),
            ).where(*window)
        )
    ).one()
    terminal = counts[v1.COMPLETED] + counts[v1.FAILED]
    pq = select(func.count(), func.min(Run.end_time)).where(
        Run.tenant_id == who.tenant_id, Run.approval_state == "pending"
    )
    if definition_id is not None:
        pq = pq.where(Run.workflow_id == definition_id)
    pending, oldest = (await session.execute(pq)).one()
    active = await session.scalar(
        select(func.count())
        .select_from(Workflow)
        .outerjoin(V1Definition, V1Definition.workflow_id == Workflow.id)
        .where(
            Workflow.tenant_id == who.tenant_id,
            func.coalesce(V1Definition.is_active, True).is_(True),
            func.coalesce(V1Definition.is_template, False).is_(False),
        )
    )
    return {
        "window_start": start,
        "window_end": until,
        "total": int(total),
        "counts_by_state": counts,
        "failure_rate": counts[v1.FAILED] / terminal if terminal else None,
        "duration_p50_seconds": float(p50) if p50 is not None else None,
        "duration_p95_seconds": float(p95) if p95 is not None else None,
        "pending_approval_count": int(pending or 0),
        "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest is not None else None,
        "adoption": {
            "runs": int(total),
            "active_definitions": int(active or 0),
            "distinct_triggerers": int(triggerers),
        },
    }
