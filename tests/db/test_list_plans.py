"""Every list and summary query reads the tables that grow with runs (runs, tasks, pauses) through an
index, never a sequential scan: that is what keeps a page's cost flat as runs accumulate.

The queries are the real ones: the functions of db/ are called and the statements they send are captured
and EXPLAINed with their parameters, on a database of their own seeded with 50,000 runs by
bench/scale_seed.py and ANALYZEd, under both plan cache modes (the driver prepares statements, and after
five executions PostgreSQL may switch a statement to a generic plan that knows no parameter values)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.scale_seed import Seeded, seed
from db import run_queries, v1_definition_repo, v1_queries, workflow_repo
from db.accounts import Principal, Role
from db.migrate import upgrade_async
from db.session import make_engine, make_session_factory
from telemetry import db_gauges
from telemetry.metrics import build_metrics
from tests.conftest import Stack

pytestmark = pytest.mark.integration

GROWING = {"runs", "tasks", "pauses"}


@dataclass
class Seed:
    engine: AsyncEngine
    rows: Seeded
    who: Principal


@pytest.fixture(scope="module")
async def seeded(stack: Stack) -> AsyncIterator[Seed]:
    """A database of its own (the stack's reconciler would otherwise try to settle the seeded open runs)."""
    name = f"plans_{uuid.uuid4().hex[:8]}"
    admin = make_engine(stack.database_url, pool_size=1)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"CREATE DATABASE {name}"))
    parts = urlsplit(stack.database_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    await upgrade_async(url)
    engine = make_engine(url, pool_size=2)
    try:
        rows = await seed(engine, runs=50_000, workflows=1_000, paused=500)
        owner = await _owner(engine, rows.tenant_id)
        found = Seed(engine, rows, Principal(rows.tenant_id, owner, Role.OWNER))
        # The first definitions list gives /wf/ workflows their v1 rows; plan on the table as it then is.
        async with make_session_factory(engine)() as session:
            await _definitions(session, found)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
        yield found
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()


async def _owner(engine: AsyncEngine, tenant_id: uuid.UUID) -> uuid.UUID:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT id FROM users WHERE tenant_id = :t AND role = 'OWNER'"), {"t": tenant_id}
        )
    assert isinstance(found, uuid.UUID)
    return found


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def keep(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", keep)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


Query = Callable[[AsyncSession, Seed], Awaitable[object]]


def _factory(d: Seed) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(d.engine)


def _v1(**filters: Any) -> Query:
    async def call(s: AsyncSession, d: Seed) -> object:
        return await v1_queries.list_runs(s, d.who, v1_queries.RunFilters(**filters), approver=True)

    return call


async def _definitions(s: AsyncSession, d: Seed) -> object:
    return await v1_definition_repo.list_definitions(
        s,
        d.who,
        search=None,
        is_template=None,
        needs_approval=None,
        mine=None,
        sort_by="CREATED_AT",
        sort_dir=None,
        limit=20,
        offset=0,
        created_after=None,
        created_before=None,
        updated_after=None,
        updated_before=None,
    )


async def _gauges(s: AsyncSession, d: Seed) -> object:
    await db_gauges.refresh_from_db(s, build_metrics(CollectorRegistry()))
    return None


# (name, the call, an index the page's own statement must use, or None)
CASES: list[tuple[str, Query, str | None]] = [
    (
        "GET /run/",
        lambda s, d: run_queries.list_runs(s, d.who.tenant_id, page=1, page_size=10, parent_only=True),
        "ix_runs_tenant_start",
    ),
    (
        "GET /wf/{id}/runs/",
        lambda s, d: run_queries.list_runs(
            s, d.who.tenant_id, page=1, page_size=10, workflow_id=d.rows.workflow_id
        ),
        "ix_runs_workflow_start",
    ),
    (
        "GET /wf/paused_workflows/",
        lambda s, d: run_queries.paused_page(s, d.who.tenant_id, 1, 10),
        "ix_runs_tenant_status_start",
    ),
    ("v1 list, default order", _v1(), "ix_runs_v1_started"),
    ("v1 list, state FAILED", _v1(states=["FAILED"]), "ix_runs_v1_state_started"),
    ("v1 list, drafts (NOT_STARTED)", _v1(states=["NOT_STARTED"]), "ix_runs_v1_state_started"),
    ("v1 list, IN_PROGRESS", _v1(states=["IN_PROGRESS"]), None),
    ("v1 list, COMPLETED of a definition", _v1(states=["COMPLETED"], definition_id=None), None),
    ("v1 list, by CREATED_AT", _v1(sort_by="CREATED_AT"), "ix_runs_tenant_created"),
    ("v1 list, by COMPLETED_AT", _v1(sort_by="COMPLETED_AT"), "ix_runs_v1_completed"),
    (
        "v1 summary",
        lambda s, d: v1_queries.summary(_factory(d), d.who, None, None, None),
        "ix_runs_tenant_created",
    ),
    (
        "v1 summary of a definition",
        lambda s, d: v1_queries.summary(_factory(d), d.who, None, None, d.rows.workflow_id),
        None,
    ),
    (
        "GET /wf/",
        lambda s, d: workflow_repo.workflows(s, d.who.tenant_id, 1, 10),
        "ix_workflows_tenant_created",
    ),
    ("pause history", lambda s, d: run_queries.pauses(s, d.rows.run_id), None),
    (
        "run tasks",
        lambda s, d: run_queries.tenant_run(s, d.who.tenant_id, d.rows.paused_run_id, details=True),
        None,
    ),
    ("v1 definitions", _definitions, None),
    (
        "v1 definitions page: latest run per definition",
        lambda s, d: v1_queries.definition_stats(s, [d.rows.workflow_id]),
        "ix_runs_workflow_created",
    ),
    (
        "v1 definitions page: pending approvals per definition",
        lambda s, d: v1_queries.definition_stats(s, [d.rows.workflow_id]),
        "ix_runs_workflow_pending",
    ),
    ("/metrics DB gauges", _gauges, None),
]


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize(("name", "call", "index"), CASES, ids=[c[0] for c in CASES])
async def test_list_query_reads_growing_tables_through_an_index(
    seeded: Seed, name: str, call: Query, index: str | None, mode: str
) -> None:
    if name == "v1 list, COMPLETED of a definition":
        call = _v1(states=["COMPLETED"], definition_id=seeded.rows.workflow_id)
    sessions = make_session_factory(seeded.engine)
    with captured(seeded.engine) as statements:
        async with sessions() as session:
            await call(session, seeded)
    assert statements, f"{name} sent no SELECT"
    used: set[str] = set()
    async with seeded.engine.connect() as conn:
        await conn.execute(text(f"SET plan_cache_mode = {mode}"))
        for sql, params in statements:
            explained = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params)
            raw = explained.scalar_one()
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            for node in _nodes(plan):
                relation = node.get("Relation Name")
                assert not (node["Node Type"] == "Seq Scan" and relation in GROWING), (
                    f"{name}: sequential scan of {relation} in\n{sql}"
                )
                if "Index Name" in node:
                    used.add(node["Index Name"])
    if index is not None:
        assert index in used, f"{name} did not use {index}; used {sorted(used)}"
