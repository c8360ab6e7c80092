"""The v1 fields of workflows (`v1_definitions`): defaults for workflows made through `/wf/`, and the
instruction document every definition has."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import v1_repo as v1
from db import v1_tags
from db.accounts import Principal
from db.models import Document, V1Definition, Workflow
from db.v1_queries import bounded_total
from run_status import IngestStatus

INSTRUCTION_NAME = "instruction.md"


def text_document(tenant_id: uuid.UUID, parent: uuid.UUID, path: str, name: str, text: str) -> Document:
    """A markdown document (already ingested: its text is given), not yet added to a session."""
    return Document(
        id=uuid.uuid4(),
        path_part_id=uuid.uuid4(),
        tenant_id=tenant_id,
        parent_path_part_id=parent,
        materialized_path=v1.child_path(path, name),
        name=name,
        media_type="text/markdown",
        size_bytes=len(text.encode()),
        content=text.encode(),
        text=text,
        ingest_status=IngestStatus.COMPLETED,
    )


async def fields(
    session: AsyncSession, workflow_id: uuid.UUID, *, refresh: bool = False
) -> V1Definition | None:
    """The workflow's v1 fields (`refresh`: as stored now, not as this session last saw them)."""
    return await session.get(V1Definition, workflow_id, populate_existing=refresh)


async def ensure(session: AsyncSession, wf: Workflow) -> V1Definition:
    """The v1 fields of a workflow; a workflow made through `/wf/` gets defaults on first v1 use."""
    d = await fields(session, wf.id)
    if d is not None:
        return d
    await add_v1_defaults(session, wf.tenant_id, [wf])
    found = await fields(session, wf.id, refresh=True)
    assert found is not None
    return found


async def without_v1_fields(session: AsyncSession, tenant_id: uuid.UUID) -> list[Workflow]:
    # Ids first, from two narrow indexes (migration 0012's ix_workflows_tenant_ids and v1_definitions'
    # key); the wide rows (each holds its graph) only for the few that lack fields. Reading every
    # workflow's row for this check was most of the definitions list's cost at 10,000 workflows.
    ids = (
        await session.scalars(
            select(Workflow.id).where(
                Workflow.tenant_id == tenant_id,
                ~exists().where(V1Definition.workflow_id == Workflow.id),
            )
        )
    ).all()
    if not ids:
        return []
    return list((await session.scalars(select(Workflow).where(Workflow.id.in_(ids)))).all())


async def add_v1_defaults(session: AsyncSession, tenant_id: uuid.UUID, workflows: Sequence[Workflow]) -> None:
    """Give workflows of one tenant their v1 defaults (in the root folder, an empty instruction) in a
    few statements however many there are; commits. Those a concurrent request gave theirs keep them."""
    if not workflows:
        return
    root = await v1.root_folder(session, tenant_id)
    rows: list[Document | V1Definition] = []
    for wf in workflows:
        path_part = uuid.uuid4()
        doc = text_document(
            tenant_id, path_part, v1.child_path(root.materialized_path, wf.name), INSTRUCTION_NAME, ""
        )
        definition = V1Definition(
            workflow_id=wf.id,
            tenant_id=tenant_id,
            path_part_id=path_part,
            parent_path_part_id=root.path_part_id,
            instruction_path_part_id=doc.path_part_id,
        )
        rows += [doc, definition]
    try:
        async with session.begin_nested():
            session.add_all(rows)
    except IntegrityError:
        pass  # a racing request stored them first (its insert committed before ours failed)
    await session.commit()


async def list_definitions(
    session: AsyncSession,
    who: Principal,
    *,
    search: str | None,
    is_template: bool | None,
    needs_approval: bool | None,
    mine: bool | None,
    sort_by: str,
    sort_dir: str | None,
    limit: int,
    offset: int,
    created_after: datetime | None,
    created_before: datetime | None,
    updated_after: datetime | None,
    updated_before: datetime | None,
    include_tag_ids: list[uuid.UUID] | None = None,
    exclude_tag_ids: list[uuid.UUID] | None = None,
) -> tuple[list[tuple[Workflow, V1Definition]], int]:
    """A page of the tenant's definitions with ksapi's filters and sort, and the total (bounded as the
    run lists' are: `v1_queries.COUNT_AHEAD`).

    Workflows made through /wf/ get their v1 fields first, so every filter sees them."""
    await add_v1_defaults(session, who.tenant_id, await without_v1_fields(session, who.tenant_id))
    q = (
        select(Workflow, V1Definition)
        .join(V1Definition, V1Definition.workflow_id == Workflow.id)
        .where(Workflow.tenant_id == who.tenant_id)
    )
    q = q.where(V1Definition.is_template.is_(bool(is_template)))
    if search:
        q = q.where(Workflow.name.ilike(f"%{search}%"))
    if needs_approval is not None:
        q = q.where(V1Definition.approval_required.is_(needs_approval))
    if mine:
        q = q.where(V1Definition.owner_id == who.user_id)
    for moment, after, before in (
        (Workflow.created_at, created_after, created_before),
        (Workflow.updated_at, updated_after, updated_before),
    ):
        if after is not None:
            q = q.where(moment >= after)
        if before is not None:
            q = q.where(moment < before)
    if include_tag_ids:
        q = q.where(v1_tags.definition_tagged(who.tenant_id, include_tag_ids, "included_tags"))
    if exclude_tag_ids:  # exclude wins over include
        q = q.where(~v1_tags.definition_tagged(who.tenant_id, exclude_tag_ids, "excluded_tags"))
    column: Any = {"NAME": Workflow.name, "UPDATED_AT": Workflow.updated_at}.get(sort_by, Workflow.created_at)
    desc = (sort_dir or ("ASC" if sort_by == "NAME" else "DESC")) == "DESC"
    q = q.order_by(column.desc() if desc else column.asc(), Workflow.id)
    total = await bounded_total(session, q, Workflow.id, offset, limit)
    rows = (await session.execute(q.limit(limit).offset(offset))).all()
    return [(r[0], r[1]) for r in rows], total


async def approval_required(session: AsyncSession, workflow_id: uuid.UUID) -> bool:
    required = await session.scalar(
        select(V1Definition.approval_required).where(V1Definition.workflow_id == workflow_id)
    )
    return bool(required)
