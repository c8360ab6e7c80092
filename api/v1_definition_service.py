"""v1 workflow definitions: the `/wf/` workflow row plus its v1 fields (same id, same object)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api import v1_service as svc
from api.v1_schemas import CreateDefinitionRequest
from api.workflow_service import delete_workflow, prepare_definition
from db import v1_definitions
from db import v1_repo as v1
from db.accounts import Principal
from db.models import Document, Folder, Run, V1Definition, Workflow, utcnow
from db.v1_definitions import INSTRUCTION_NAME
from errors import Conflict, NotFound
from run_status import RunStatus


@dataclass
class Instantiation:
    """What `instantiate` asks for; everything else is copied from the source definition."""

    name: str
    parent_path_part_id: uuid.UUID
    description: str | None = None
    instruction_path_part_id: uuid.UUID | None = None
    max_run_duration_seconds: int | None = None
    approval_required: bool | None = None
    is_template: bool = False
    selected_skill_ids: list[uuid.UUID] | None = None
    common_file_path_part_ids: list[uuid.UUID] | None = None


async def _definition_path(session: AsyncSession, d: V1Definition, wf: Workflow) -> str:
    parent = await session.scalar(
        select(Folder.materialized_path).where(Folder.path_part_id == d.parent_path_part_id)
    )
    return v1.child_path(parent or "/", wf.name)


async def ensure_definition(session: AsyncSession, wf: Workflow) -> V1Definition:
    """The v1 fields of a workflow; a workflow made through `/wf/` gets defaults on first v1 use."""
    d = await session.get(V1Definition, wf.id)
    if d is not None:
        return d
    await v1_definitions.add_v1_defaults(session, wf.tenant_id, [wf])
    found = await session.get(V1Definition, wf.id, populate_existing=True)
    assert found is not None
    return found


async def get_definition(
    session: AsyncSession, who: Principal, definition_id: uuid.UUID
) -> tuple[Workflow, V1Definition]:
    wf = await session.scalar(
        select(Workflow).where(Workflow.id == definition_id, Workflow.tenant_id == who.tenant_id)
    )
    if wf is None:
        raise NotFound("Workflow definition not found")
    return wf, await ensure_definition(session, wf)


async def create_definition(
    session: AsyncSession,
    who: Principal,
    body: CreateDefinitionRequest | Instantiation,
    *,
    created_from: Workflow | None = None,
) -> tuple[Workflow, V1Definition]:
    """A new definition starts from the default graph, or from `created_from` (instantiate), whose
    graph, instruction text and v1 fields it copies where `body` leaves them unset.

    Raises:
        NotFound: the parent folder or instruction document does not exist.
        Conflict: the name is taken in the tenant; the parent is a run's folder.
    """
    parent = await svc.parent_folder(session, who, body.parent_path_part_id)
    if parent.run_id is not None:
        raise Conflict("A workflow cannot live in a run's folder")
    if await session.scalar(
        select(Workflow.id).where(Workflow.tenant_id == who.tenant_id, Workflow.name == body.name)
    ):
        raise Conflict(f"A workflow named '{body.name}' already exists")
    src = await session.get(V1Definition, created_from.id) if created_from is not None else None
    wf = Workflow(
        tenant_id=who.tenant_id,
        name=body.name,
        description=body.description or (created_from.description if created_from else ""),
        definition=dict(created_from.definition) if created_from is not None else prepare_definition(None),
    )
    session.add(wf)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"A workflow named '{body.name}' already exists") from None
    path_part = uuid.uuid4()
    instruction_pp = body.instruction_path_part_id
    if instruction_pp is not None:
        await svc.document_by_path_part(session, who, instruction_pp)
    else:
        src_doc = (
            await session.scalar(
                select(Document).where(Document.path_part_id == src.instruction_path_part_id)
            )
            if src is not None
            else None
        )
        doc = await svc.create_text_document(
            session,
            who.tenant_id,
            path_part,
            v1.child_path(parent.materialized_path, body.name),
            INSTRUCTION_NAME,
            (src_doc.text or "") if src_doc else "",
        )
        instruction_pp = doc.path_part_id
    d = V1Definition(
        workflow_id=wf.id,
        tenant_id=who.tenant_id,
        path_part_id=path_part,
        parent_path_part_id=parent.path_part_id,
        instruction_path_part_id=instruction_pp,
        max_run_duration_seconds=body.max_run_duration_seconds
        or (src.max_run_duration_seconds if src else 1800),
        approval_required=body.approval_required
        if body.approval_required is not None
        else (src.approval_required if src else False),
        is_template=bool(body.is_template),
        created_from_id=created_from.id if created_from is not None else None,
        owner_id=who.user_id,
        selected_skill_ids=_ids(body.selected_skill_ids)
        if body.selected_skill_ids is not None
        else (src.selected_skill_ids if src else None),
        common_file_path_part_ids=_ids(body.common_file_path_part_ids)
        if body.common_file_path_part_ids is not None
        else (src.common_file_path_part_ids if src else None),
    )
    session.add(d)
    await session.commit()
    return wf, d


def _ids(values: list[uuid.UUID] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


async def update_definition(
    session: AsyncSession, who: Principal, definition_id: uuid.UUID, body: Any
) -> tuple[Workflow, V1Definition]:
    """PUT semantics, except instruction, skills and common files, which null retains.

    Raises:
        Conflict: name taken; a move while a run is in progress.
    """
    wf, d = await get_definition(session, who, definition_id)
    if body.name != wf.name and await session.scalar(
        select(Workflow.id).where(
            Workflow.tenant_id == who.tenant_id, Workflow.name == body.name, Workflow.id != wf.id
        )
    ):
        raise Conflict(f"A workflow named '{body.name}' already exists")
    if body.parent_path_part_id is not None and body.parent_path_part_id != d.parent_path_part_id:
        parent = await svc.parent_folder(session, who, body.parent_path_part_id)
        if parent.run_id is not None:
            raise Conflict("A workflow cannot live in a run's folder")
        busy = await session.scalar(
            select(Run.id)
            .where(
                Run.workflow_id == wf.id,
                Run.draft_state.is_(None),
                Run.status.in_([RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.PAUSED.value]),
            )
            .limit(1)
        )
        if busy is not None:
            raise Conflict("The workflow has a run in progress; it cannot be moved now")
        d.parent_path_part_id = parent.path_part_id
    if body.instruction_path_part_id is not None:
        await svc.document_by_path_part(session, who, body.instruction_path_part_id)
        d.instruction_path_part_id = body.instruction_path_part_id
    wf.name = body.name
    wf.description = body.description
    wf.updated_at = utcnow()
    d.max_run_duration_seconds = body.max_run_duration_seconds or 1800
    d.is_active = body.is_active
    d.approval_required = body.approval_required
    if body.selected_skill_ids is not None:
        d.selected_skill_ids = _ids(body.selected_skill_ids)
    if body.common_file_path_part_ids is not None:
        d.common_file_path_part_ids = _ids(body.common_file_path_part_ids)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"A workflow named '{body.name}' already exists") from None
    return wf, d


async def delete_definition(
    session: AsyncSession, who: Principal, definition_id: uuid.UUID, data_dir: Any
) -> None:
    """Delete with its runs (as `DELETE /wf/{id}/`). Raises Conflict while a run has not finished."""
    wf, _ = await get_definition(session, who, definition_id)
    await delete_workflow(session, wf, data_dir)


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
) -> tuple[list[tuple[Workflow, V1Definition]], int]:
    # Workflows made through /wf/ get their v1 fields first, so every filter sees them.
    await v1_definitions.add_v1_defaults(
        session, who.tenant_id, await v1_definitions.without_v1_fields(session, who.tenant_id)
    )
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
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    column: Any = {"NAME": Workflow.name, "UPDATED_AT": Workflow.updated_at}.get(sort_by, Workflow.created_at)
    desc = (sort_dir or ("ASC" if sort_by == "NAME" else "DESC")) == "DESC"
    q = q.order_by(column.desc() if desc else column.asc(), Workflow.id).limit(limit).offset(offset)
    rows = (await session.execute(q)).all()
    return [(r[0], r[1]) for r in rows], total
