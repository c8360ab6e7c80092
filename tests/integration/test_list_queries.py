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

from api.pyspur import presenters
from api.v1 import presenters as present
from core import pauses as pause_service
from core import v1_resources
from db import dataset_repo, run_queries, v1_definition_repo, v1_queries, workflow_repo
from db.accounts import Principal, Role
from db.models import (
    Dataset,
    Document,
    Folder,
    OutputFile,
    OutputLine,
    Pause,
    Run,
    Task,
    User,
    Workflow,
    WorkflowVersion,
    utcnow,
)
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
    """A tenant with `n` workflows (no v1 fields yet), `n` versions and `n` PAUSED runs of the first
    (each with tasks, an open pause, a folder and a document, reading the first of `n` datasets), and
    `n` output files of two lines each."""
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
        datasets = [
            Dataset(
                tenant_id=who.tenant_id,
                name=f"ds-{i}",
                file_name="ds.csv",
                format="csv",
                columns=["a"],
                row_count=0,
                size_bytes=0,
            )
            for i in range(n)
        ]
        files = [OutputFile(id=uuid.uuid4(), tenant_id=who.tenant_id, file_name=f"of-{i}") for i in range(n)]
        versions = [
            WorkflowVersion(
                workflow_id=wfs[0].id,
                version=i + 1,
                name="wf-0",
                definition=definition,
                definition_hash=f"h{i}",
            )
            for i in range(n)
        ]
        session.add_all([*datasets, *files, *versions])
        await session.flush()
        session.add_all(
            [OutputLine(output_file_id=f.id, idx=i, line={"i": i}) for f in files for i in range(2)]
        )
        start = utcnow()
        for i in range(n):
            run = Run(
                tenant_id=who.tenant_id,
                workflow_id=wfs[0].id,
                workflow_version_id=versions[0].id,
                triggered_by=who.user_id,
                status=RunStatus.PAUSED.value,
                start_time=start - timedelta(seconds=i),
                v1=True,
                name=f"run-{i}",
                input_dataset_id=datasets[0].id,
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
    rows, _ = await v1_definition_repo.list_definitions(
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
    folder = await v1_resources.folder_by_any_id(session, who, root)
    items, _ = await v1_resources.folder_contents(session, who, folder, PAGE, 0)
    return len([present.folder(i) if isinstance(i, Folder) else present.document(i) for i in items])


async def _datasets(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    return len([presenters.dataset(d) for d in await dataset_repo.datasets(session, who.tenant_id, 1, PAGE)])


async def _dataset_runs(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    (first,) = [d for d in await dataset_repo.datasets(session, who.tenant_id, 1, PAGE) if d.name == "ds-0"]
    rows = await dataset_repo.dataset_runs(session, who.tenant_id, first.id, 1, PAGE)
    return len([presenters.run(r) for r in rows])


async def _output_files(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    files = await dataset_repo.output_files(session, who.tenant_id, 1, PAGE)
    counts = await dataset_repo.line_counts(session, [f.id for f in files])
    return len([presenters.output_file(f, counts.get(f.id, 0)) for f in files])


async def _versions(session: AsyncSession, who: Principal, _root: uuid.UUID) -> int:
    (wf,) = [w for w in await workflow_repo.workflows(session, who.tenant_id, 1, PAGE) if w.name == "wf-0"]
    return len([presenters.version(v) for v in await workflow_repo.versions(session, wf.id, 1, PAGE)])


async def _folders(session: AsyncSession, who: Principal, root: uuid.UUID) -> int:
    rows, _ = await v1_resources.list_folders(session, who, root, PAGE, 0)
    return len([present.folder(f) for f in rows])


@pytest.mark.parametrize(
    "read",
    [
        _paused,
        _pyspur_runs,
        _workflows,
        _v1_runs,
        _v1_definitions,
        _folder_contents,
        _datasets,
        _dataset_runs,
        _output_files,
        _versions,
        _folders,
    ],
    ids=lambda read: read.__name__.lstrip("_"),
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
