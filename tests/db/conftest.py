"""Service-level fixtures: sessions on the stack's PostgreSQL and rows built directly, no HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Folder, Run, V1Definition, Workflow, WorkflowVersion, utcnow
from run_status import RunStatus
from tests.builders import double_graph
from tests.conftest import Tenant


async def make_run(
    db: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    status: RunStatus = RunStatus.RUNNING,
    *,
    v1: bool = False,
    approval_required: bool = False,
    **fields: Any,
) -> uuid.UUID:
    """A stored run of a fresh workflow; a v1 one has its definition, pinned version and outputs/ folder."""
    graph = double_graph()
    async with db() as session, session.begin():
        wf = Workflow(tenant_id=tenant.tenant_id, name=f"s-{uuid.uuid4().hex[:8]}", definition=graph)
        session.add(wf)
        await session.flush()
        version = WorkflowVersion(
            workflow_id=wf.id, version=1, name=wf.name, definition=graph, definition_hash="h"
        )
        session.add(version)
        await session.flush()
        run = Run(
            tenant_id=tenant.tenant_id,
            workflow_id=wf.id,
            workflow_version_id=version.id,
            triggered_by=tenant.user_id,
            status=status.value,
            v1=v1,
            **fields,
        )
        session.add(run)
        await session.flush()
        if v1:
            folder = uuid.uuid4()
            session.add(
                V1Definition(
                    workflow_id=wf.id,
                    tenant_id=tenant.tenant_id,
                    parent_path_part_id=folder,
                    instruction_path_part_id=uuid.uuid4(),
                    approval_required=approval_required,
                )
            )
            session.add(
                Folder(
                    tenant_id=tenant.tenant_id,
                    parent_path_part_id=folder,
                    name="outputs",
                    materialized_path=f"/{wf.name}/outputs",
                    run_id=run.id,
                    role="outputs",
                    created_at=utcnow(),
                )
            )
        return run.id
