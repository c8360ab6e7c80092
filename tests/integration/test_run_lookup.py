"""One lookup of a tenant's run serves both surfaces; each words its 404 its own way (service level)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core import runs as run_service
from core import v1_runs as v1_run_service
from db.accounts import Principal, Role
from db.models import Run, Workflow
from db.session import make_engine, make_session_factory
from errors import NotFound
from run_status import RunStatus
from tests.conftest import Stack, make_tenant
from workflows.definition import default_definition

pytestmark = pytest.mark.integration


@pytest.fixture
async def session(stack: Stack) -> AsyncIterator[AsyncSession]:
    engine = make_engine(stack.database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as s:
            yield s
    finally:
        await engine.dispose()


async def _run_of(session: AsyncSession, who: Principal) -> Run:
    wf = Workflow(tenant_id=who.tenant_id, name="wf", definition=default_definition().model_dump(mode="json"))
    session.add(wf)
    await session.flush()
    run = Run(tenant_id=who.tenant_id, workflow_id=wf.id, status=RunStatus.PENDING.value)
    session.add(run)
    await session.commit()
    return run


async def test_a_run_is_found_only_in_its_tenant_with_each_surfaces_404(
    stack: Stack, session: AsyncSession
) -> None:
    mine = await make_tenant(stack.database_url)
    theirs = await make_tenant(stack.database_url)
    me = Principal(mine.tenant_id, mine.user_id, Role.OWNER)
    them = Principal(theirs.tenant_id, theirs.user_id, Role.OWNER)
    run = await _run_of(session, me)

    assert (await run_service.get_run(session, me, str(run.id))).tasks == []
    assert (await v1_run_service.get_run(session, me, run.id)).id == run.id
    with pytest.raises(NotFound, match=r"^Run not found$"):
        await run_service.get_run(session, them, run.id)
    with pytest.raises(NotFound, match=r"^Run not found$"):
        await run_service.get_run(session, me, "not-a-uuid")
    with pytest.raises(NotFound, match=r"^Workflow run not found$"):
        await v1_run_service.get_run(session, them, run.id)
    with pytest.raises(NotFound, match=r"^Workflow run not found$"):
        await v1_run_service.get_run(session, me, uuid.uuid4())
