"""Every list reads a page in a constant number of statements, however many rows the page holds.

Service tests without HTTP, on the stack's PostgreSQL: each list is read once for a tenant with a few
rows and once for a tenant with a full page of 100, counting the statements the database receives.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api import pause_service, presenters
from api import v1_presenters as present
from api import v1_service as svc
from db import run_queries, v1_definitions, v1_queries, workflow_repo
from db.accounts import Principal, Role
from db.models import Document, Folder, Pause, Run, Task, User, Workflow, utcnow
from db.session import make_engine, make_session_factory
from run_status import RunStatus, TaskStatus
from tests.conftest import Stack, make_tenant
from workflows.definition import default_definition

pytestmark = pytest.mark.integration

FEW, PAGE = 3, 100


@pytest.fixture(scope="module")
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(stack.database_url, pool_size=2)
    try:
        yield eng
    finally:
        await eng.dispose()


@contextlib.contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _tenant_with(
    sessions: async_sessionmaker[AsyncSession], database_url: str, n: int
) -> tuple[Principal, uuid.UUID]:
    """A tenant with one workflow (no v1 fields yet) and `n` PAUSED runs of it, each with tasks, an
    open pause, an input folder and a document; plus `n - 1` more workflows."""
    t = await make_tenant(database_url)
    who = Principal(t.tenant_id, t.user_id, Role.OWNER)
    definition = default_definition().model_dump(mode="json")
    async with sessions() as session, session.begin():
        wfs = [Workflow(tenant_id=who.tenant_id, name=f"wf-{i}", definition=definition) for i in range(n)]
        session.add_all(wfs)
        await session.flush()
        root = Folder(
            tenant_id=who.tenant_id,
            path_part_id=uuid.uuid4(),
            name="root",
            materialized_path="/",
            system_managed=True,
        )
        session.add(root)
        start = utcnow()
        for i in range(n):
            run = Run(
                tenant_id=who.tenant_id,
                workflow_id=wfs[0].id,
                triggered_by=who.user_id,
                status=RunStatus.PAUSED.value,
                start_time=start - timedelta(seconds=i),
                v1=True,
                name=f"run-{i}",
            )
            session.add(run)
            await session.flush()
            session.add_all(
                [
                    Task(run_id=run.id, node_id="input", status=TaskStatus.COMPLETED.value, seq=0),
                    Task(run_id=run.id, node_id="ask", status=TaskStatus.PAUSED.value, seq=1),
                    Pause(run_id=run.id, node_id="ask", seq=1, resume_time=start),
                    Pause(run_id=run.id, node_id="ask", seq=2),
                    Document(
                        tenant_id=who.tenant_id,
                        parent_path_part_id=root.path_part_id,
                        materialized_path=f"/doc-{i}",
                        run_id=run.id,
                        name=f"doc-{i}",
                        media_type="text/plain",
                        uploaded_by=who.user_id,
                    ),
                    Folder(
                        tenant_id=who.tenant_id,
                        parent_path_part_id=root.path_part_id,
                        name=f"folder-{i}",
                        materialized_path=f"/folder-{i}",
                        owner_id=who.user_id,
                    ),
                ]
            )
        # Another user triggers nothing but owns nothing either: the user lookups stay batched.
        session.add(User(tenant_id=who.tenant_id, email=f"{uuid.uuid4().hex[:8]}@x", role="USER"))
    return who, root.path_part_id


ListRead = Callable[[AsyncSession, Principal, uuid.UUID], Awaitable[int]]


async def _paused(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    return len([presenters.paused(*row) for row in await pause_service.paused_runs(session, who, 1, PAGE)])


async def _pyspur_runs(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    rows = await run_queries.list_runs(session, who.tenant_id, page=1, page_size=PAGE, parent_only=True)
    return len([presenters.run(r) for r in rows])


async def _workflows(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    return len(
        [presenters.workflow(wf) for wf in await workflow_repo.workflows(session, who.tenant_id, 1, PAGE)]
    )


async def _v1_runs(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    rows, _ = await v1_queries.list_runs(session, who, v1_queries.RunFilters(limit=PAGE), approver=True)
    return len(await present.runs(session, who, rows))


async def _v1_definitions(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    rows, _ = await v1_definitions.list_definitions(
        session,
        who,
        search=None,
        is_template=None,
        needs_approval=None,
        mine=None,
        sort_by="CREATED_AT",
        sort_dir=None,
        limit=PAGE,
        offset=0,
        created_after=None,
        created_before=None,
        updated_after=None,
        updated_before=None,
    )
    return len(await present.definitions(session, who, rows))


async def _folder_contents(session: AsyncSession, who: Principal, root: uuid.UUID) -> int:
    folder = await svc.folder_by_any_id(session, who, root)
    items, _ = await svc.folder_contents(session, who, folder, PAGE, 0)
    return len([present.folder(i) if isinstance(i, Folder) else present.document(i) for i in items])


@pytest.mark.parametrize(
    "read",
    [_paused, _pyspur_runs, _workflows, _v1_runs, _v1_definitions, _folder_contents],
    ids=["paused_workflows", "runs", "workflows", "v1_runs", "v1_definitions", "folder_contents"],
)
async def test_a_full_page_costs_as_many_statements_as_a_short_one(
    stack: Stack, engine: AsyncEngine, read: ListRead
) -> None:
    sessions = make_session_factory(engine)
    counts = {}
    for n in (FEW, PAGE):
        who, root = await _tenant_with(sessions, stack.database_url, n)
        async with sessions() as session:
            with statements(engine) as seen:
                listed = await read(session, who, root)
        assert listed >= n
        counts[n] = len(seen)
    print(f"{read.__name__}: {counts}")
    assert counts[PAGE] == counts[FEW], counts
