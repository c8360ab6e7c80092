"""v1 reads: the run lists (ksapi's filters), the summary, and the related rows presenters load for a
whole page at once (users, definition paths, run documents, per-definition counts)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Executable, Select, Uuid, func, not_, nulls_last, or_, select, true, values
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from db import v1_repo as v1
from db import v1_tags
from db.accounts import Principal
from db.models import Document, Folder, Run, Task, User, V1Definition, Workflow, utcnow
from run_status import EXECUTION_VIEW, ApprovalState, DocumentOrigin, execution_state


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
    exclude_tag_ids: list[uuid.UUID] | None = None


def _filtered(who: Principal, f: RunFilters, approver: bool) -> Select[Run]:
    q = select(Run).where(Run.tenant_id == who.tenant_id)
    if f.states:
        q = q.where(v1.execution_state_sql().in_(f.states))
    if f.mine:
        q = q.where(Run.triggered_by == who.user_id)
    elif f.owner_id is not None:
        q = q.where(Run.triggered_by == f.owner_id)
    if f.approvable_by_me:
        # Runs that entered approval (completed under `approval_required`); owners and admins approve.
        entered = Run.approval_state != ApprovalState.NOT_REQUIRED
        q = q.where(entered if approver else Run.id.is_(None))
    if f.definition_id is not None:
        q = q.where(Run.workflow_id == f.definition_id)
    if f.approval_states:
        q = q.where(Run.approval_state.in_(f.approval_states))
    if f.include_tag_ids:
        q = q.where(v1_tags.run_tagged(who.tenant_id, f.include_tag_ids, "included_tags"))
    if f.exclude_tag_ids:  # exclude wins over include
        q = q.where(~v1_tags.run_tagged(who.tenant_id, f.exclude_tag_ids, "excluded_tags"))
    for column, after, before in (
        (Run.created_at, f.created_after, f.created_before),
        (Run.updated_at, f.updated_after, f.updated_before),
    ):
        if after is not None:
            q = q.where(column >= after)
        if before is not None:
            q = q.where(column < before)
    return q


# A list's `total` counts at most this many rows past the end of the page: exact for any filter that
# matches fewer, otherwise a lower bound that still exceeds the page end, so a client paging until
# `offset + limit >= total` sees every row. An exact count would read every matching row (a million
# rows: 100+ ms); this reads at most offset + limit + COUNT_AHEAD index entries.
COUNT_AHEAD = 1000


async def bounded_total(
    session: AsyncSession,
    q: Select[*tuple[Any, ...]],
    key: InstrumentedAttribute[uuid.UUID],
    offset: int,
    limit: int,
) -> int:
    """The number of rows of `q` (its `key` column alone is read), counted up to `offset + limit + COUNT_AHEAD`.

    `q` keeps the page's order, so the count walks the index the page is read from (a LIMIT over a
    sequential scan would cost whatever lies before the matching rows in the table)."""
    capped = q.with_only_columns(key).limit(offset + limit + COUNT_AHEAD)
    return await session.scalar(select(func.count()).select_from(capped.subquery())) or 0


async def list_runs(
    session: AsyncSession, who: Principal, f: RunFilters, *, approver: bool
) -> tuple[list[Run], int]:
    """A page of runs and the total (bounded: `COUNT_AHEAD`); `approver`: the caller may approve
    (`approvable_by_me` sees runs).

    The default order (started, newest first) and a state filter with it read migration 0011's
    expression indexes, so a page costs the same whatever the number of runs stored."""
    q = _filtered(who, f, approver)
    column = {"CREATED_AT": Run.created_at, "COMPLETED_AT": Run.end_time}.get(f.sort_by, v1.started_at_sql())
    desc = (f.sort_dir or "DESC") == "DESC"
    order = column.desc() if desc else column.asc()
    if f.sort_by != "CREATED_AT":  # created_at is never null; NULLS LAST there would not match its index
        order = nulls_last(order)
    q = q.order_by(order, Run.created_at.desc(), Run.id)
    total = await bounded_total(session, q, Run.id, f.offset, f.limit)
    rows = await session.scalars(q.limit(f.limit).offset(f.offset))
    return list(rows.all()), total


async def summary(
    sessions: async_sessionmaker[AsyncSession],
    who: Principal,
    since: datetime | None,
    until: datetime | None,
    definition_id: uuid.UUID | None,
) -> dict[str, Any]:
    """Aggregates over runs created in the window (default: the last 7 days), computed in SQL.

    The four statements are independent reads, each on its own pooled connection at once: at a
    million runs the window's counts and its quantiles cost ~4-5 ms of PostgreSQL each, and run one
    after the other they made the call three times the empty database's (issue 15)."""
    now = utcnow()
    start = since or now - timedelta(days=7)
    window = [Run.tenant_id == who.tenant_id, Run.created_at >= start]
    if until is not None:
        window.append(Run.created_at < until)
    if definition_id is not None:
        window.append(Run.workflow_id == definition_id)
    # Both window statements read the covering index of migration 0011 (no table rows) on plain
    # columns: the counts group by the stored state columns and map them to execution states here
    # (evaluating the state's CASE per run cost more than reading the run), and the durations are
    # sorted as intervals (as fast as float8 from `date_part`, which costs its own call per run;
    # `extract` gives numeric, several times slower). The window's runs are still read: the
    # percentiles are exact.
    grouped_q = (
        select(Run.status, Run.draft_state, Run.triggered_by, func.count())
        .where(*window)
        .group_by(Run.status, Run.draft_state, Run.triggered_by)
    )
    finished = [s.value for s, view in EXECUTION_VIEW.items() if view in (v1.COMPLETED, v1.FAILED)]
    quantiles_q = select(
        func.percentile_cont(array([0.5, 0.95])).within_group(Run.end_time - Run.start_time)
    ).where(*window, Run.draft_state.is_(None), Run.status.in_(finished))
    pending_q = select(func.count(), func.min(Run.end_time)).where(
        Run.tenant_id == who.tenant_id, Run.approval_state == ApprovalState.PENDING
    )
    if definition_id is not None:
        pending_q = pending_q.where(Run.workflow_id == definition_id)
    # Active = the tenant's workflows less its inactive or template v1 definitions (migration 0013's
    # partial index holds those few), instead of joining every workflow to its v1 fields.
    workflows = select(func.count()).select_from(Workflow).where(Workflow.tenant_id == who.tenant_id)
    excluded = (
        select(func.count())
        .select_from(V1Definition)
        .where(
            V1Definition.tenant_id == who.tenant_id,
            or_(not_(V1Definition.is_active), V1Definition.is_template),
        )
    )
    active_q = select(workflows.scalar_subquery() - excluded.scalar_subquery())

    async def rows(statement: Executable) -> list[Any]:
        async with sessions() as session:
            return list((await session.execute(statement)).all())

    grouped, quantile_rows, pending_rows, active_rows = await asyncio.gather(
        rows(grouped_q), rows(quantiles_q), rows(pending_q), rows(active_q)
    )
    counts = dict.fromkeys(v1.EXECUTION_STATES, 0)
    triggerers: set[uuid.UUID] = set()
    for status, draft, triggered_by, n in grouped:
        counts[execution_state(status, draft)] += int(n)
        if triggered_by is not None:
            triggerers.add(triggered_by)
    total = sum(counts.values())
    quantiles = quantile_rows[0][0]
    p50, p95 = quantiles if quantiles is not None else (None, None)
    terminal = counts[v1.COMPLETED] + counts[v1.FAILED]
    pending, oldest = pending_rows[0]
    active = active_rows[0][0]
    return {
        "window_start": start,
        "window_end": until,
        "total": int(total),
        "counts_by_state": counts,
        "failure_rate": counts[v1.FAILED] / terminal if terminal else None,
        "duration_p50_seconds": p50.total_seconds() if p50 is not None else None,
        "duration_p95_seconds": p95.total_seconds() if p95 is not None else None,
        "pending_approval_count": int(pending or 0),
        "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest is not None else None,
        "adoption": {
            "runs": int(total),
            "active_definitions": int(active or 0),
            "distinct_triggerers": len(triggerers),
        },
    }


async def run_usage(session: AsyncSession, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The LLM usage of each run's tasks summed (runs without LLM tasks are left out); the cost only
    when every call has one."""
    tokens = Task.usage["prompt_tokens"].as_integer(), Task.usage["completion_tokens"].as_integer()
    cost = Task.usage["cost_usd"].as_float()
    rows = await session.execute(
        select(
            Task.run_id,
            func.sum(tokens[0]),
            func.sum(tokens[1]),
            func.sum(cost),
            func.count(),
            func.count(cost),
        )
        .where(Task.run_id.in_(run_ids), Task.usage.is_not(None))
        .group_by(Task.run_id)
    )
    return {
        run_id: {
            "prompt_tokens": int(prompt or 0),
            "completion_tokens": int(completion or 0),
            "cost_usd": round(float(total), 8) if total is not None and priced == calls else None,
        }
        for run_id, prompt, completion, total, calls, priced in rows.all()
    }


async def users(session: AsyncSession, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, User]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(wanted)))).all()}


async def definition_paths(
    session: AsyncSession, wf_ids: set[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    """Each workflow's path part id and materialized path (derived for workflows without v1 fields)."""
    rows = (
        await session.execute(
            select(Workflow.id, Workflow.name, V1Definition.path_part_id, Folder.materialized_path)
            .outerjoin(V1Definition, V1Definition.workflow_id == Workflow.id)
            .outerjoin(Folder, Folder.path_part_id == V1Definition.parent_path_part_id)
            .where(Workflow.id.in_(wf_ids))
        )
    ).all()
    return {r[0]: (r[2] or v1.derived_id(r[0], "definition"), v1.child_path(r[3] or "/", r[1])) for r in rows}


async def run_documents(session: AsyncSession, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Document]]:
    """The runs' documents by the folder that holds them, in creation order."""
    docs: dict[uuid.UUID, list[Document]] = defaultdict(list)
    rows = await session.scalars(
        select(Document).where(Document.run_id.in_(run_ids)).order_by(Document.created_at, Document.name)
    )
    for d in rows.all():
        docs[d.parent_path_part_id].append(d)
    return docs


@dataclass
class DefinitionStats:
    pending_approvals: dict[uuid.UUID, int]
    copies: dict[uuid.UUID, int]
    last_runs: dict[uuid.UUID, Run]


async def definition_stats(session: AsyncSession, wf_ids: list[uuid.UUID]) -> DefinitionStats:
    """Per definition: runs awaiting approval, definitions instantiated from it, its latest run."""
    pending = (
        await session.execute(
            select(Run.workflow_id, func.count())
            .where(Run.workflow_id.in_(wf_ids), Run.approval_state == ApprovalState.PENDING)
            .group_by(Run.workflow_id)
        )
    ).all()
    copies = (
        await session.execute(
            select(V1Definition.created_from_id, func.count())
            .where(V1Definition.created_from_id.in_(wf_ids))
            .group_by(V1Definition.created_from_id)
        )
    ).all()
    # Each definition's latest run from its end of ix_runs_workflow_created (one probe per
    # definition on the page), not by sorting all their runs.
    page = values(sql_column("id", Uuid), name="page").data([(i,) for i in wf_ids])
    latest = (
        select(Run.id)
        .where(Run.workflow_id == page.c.id)
        .order_by(Run.created_at.desc(), Run.id)
        .limit(1)
        .lateral()
    )
    last_runs = (
        await session.scalars(
            select(Run).where(Run.id.in_(select(latest.c.id).select_from(page).join(latest, true())))
        )
        if wf_ids
        else None
    )
    return DefinitionStats(
        pending_approvals={wf_id: int(n) for wf_id, n in pending},
        copies={wf_id: int(n) for wf_id, n in copies if wf_id is not None},
        last_runs={r.workflow_id: r for r in last_runs.all()} if last_runs is not None else {},
    )


async def run_uploads(session: AsyncSession, run_id: uuid.UUID) -> list[Document]:
    """The run's uploads (its `inputs/` folder holds the only SOURCE documents of a run), oldest first."""
    rows = await session.scalars(
        select(Document)
        .where(Document.run_id == run_id, Document.origin == DocumentOrigin.SOURCE)
        .order_by(Document.created_at, Document.id)
    )
    return list(rows.all())


async def scope_items(
    session: AsyncSession, tenant_id: uuid.UUID, ids: list[str]
) -> tuple[dict[str, Document], dict[str, Folder]]:
    """The documents (by path part or version path part id) and folders (by path part id) that `ids`
    name in the tenant, keyed by those ids as strings; two statements for any number of ids."""
    wanted = [uuid.UUID(i) for i in ids]
    if not wanted:
        return {}, {}
    docs = await session.scalars(
        select(Document).where(
            Document.tenant_id == tenant_id,
            Document.path_part_id.in_(wanted) | Document.version_path_part_id.in_(wanted),
        )
    )
    by_id: dict[str, Document] = {}
    for doc in docs.all():
        by_id[str(doc.version_path_part_id)] = doc
        by_id[str(doc.path_part_id)] = doc
    folders = await session.scalars(
        select(Folder).where(Folder.tenant_id == tenant_id, Folder.path_part_id.in_(wanted))
    )
    return by_id, {str(f.path_part_id): f for f in folders.all()}
