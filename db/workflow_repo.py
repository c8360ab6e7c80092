"""Workflows (stored graphs) and their versions: lookups, pages, name checks, deletion checks."""

from __future__ import annotations

import uuid

from sqlalchemy import cast, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Run, Workflow, WorkflowVersion
from run_status import TERMINAL, RunStatus

_UNFINISHED = [s.value for s in RunStatus if s not in TERMINAL]


async def tenant_workflow(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_id: uuid.UUID
) -> Workflow | None:
    return await session.scalar(
        select(Workflow).where(Workflow.id == workflow_id, Workflow.tenant_id == tenant_id)
    )


async def workflows(session: AsyncSession, tenant_id: uuid.UUID, page: int, page_size: int) -> list[Workflow]:
    rows = await session.scalars(
        select(Workflow)
        .where(Workflow.tenant_id == tenant_id)
        .order_by(Workflow.created_at.desc(), Workflow.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return list(rows.all())


async def versions(
    session: AsyncSession, workflow_id: uuid.UUID, page: int, page_size: int
) -> list[WorkflowVersion]:
    rows = await session.scalars(
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow_id)
        .order_by(WorkflowVersion.version.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return list(rows.all())


async def name_taken(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> bool:
    q = select(Workflow.id).where(Workflow.tenant_id == tenant_id, Workflow.name == name)
    if exclude is not None:
        q = q.where(Workflow.id != exclude)
    return (await session.scalar(q)) is not None


async def has_unfinished_run(session: AsyncSession, workflow_id: uuid.UUID) -> bool:
    """A started run that has not finished (drafts never started do not count)."""
    found = await session.scalar(
        select(Run.id)
        .where(Run.workflow_id == workflow_id, Run.status.in_(_UNFINISHED), Run.draft_state.is_(None))
        .limit(1)
    )
    return found is not None


async def subworkflow_caller(session: AsyncSession, wf: Workflow) -> str | None:
    """The name of another workflow of the tenant that runs `wf` as a subworkflow."""
    return await session.scalar(
        select(Workflow.name).where(
            Workflow.tenant_id == wf.tenant_id,
            Workflow.id != wf.id,
            cast(Workflow.definition, JSONB).contains(
                {"nodes": [{"node_type": "SubworkflowNode", "config": {"workflow_id": str(wf.id)}}]}
            ),
        )
    )


async def version_by_hash(
    session: AsyncSession, workflow_id: uuid.UUID, digest: str
) -> WorkflowVersion | None:
    return await session.scalar(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.definition_hash == digest
        )
    )


async def latest_version_number(session: AsyncSession, workflow_id: uuid.UUID) -> int:
    latest = await session.scalar(
        select(func.max(WorkflowVersion.version)).where(WorkflowVersion.workflow_id == workflow_id)
    )
    return latest or 0


async def workflow(session: AsyncSession, workflow_id: uuid.UUID) -> Workflow | None:
    """By id alone, for ids read from a row the caller already holds (a run's workflow)."""
    return await session.get(Workflow, workflow_id)


async def version(session: AsyncSession, version_id: uuid.UUID) -> WorkflowVersion | None:
    return await session.get(WorkflowVersion, version_id)


async def remove(session: AsyncSession, wf: Workflow) -> None:
    """Delete the workflow with its versions and runs (foreign-key cascades)."""
    await session.delete(wf)


async def tenant_workflow_ids(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `workflow_ids` are workflows of the tenant."""
    if not workflow_ids:
        return set()
    rows = await session.scalars(
        select(Workflow.id).where(Workflow.tenant_id == tenant_id, Workflow.id.in_(workflow_ids))
    )
    return set(rows.all())
