"""v1 workflow definitions: the `/wf/` workflow row plus its v1 fields (same id, same object)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core import v1_resources, v1_schedules
from core.stored_workflows import delete_workflow, prepare_definition
from db import folders_repo, v1_definition_repo, v1_draft_repo, workflow_repo
from db import v1_repo as v1
from db.accounts import Principal
from db.models import V1Definition, Workflow, utcnow
from db.v1_definition_repo import INSTRUCTION_NAME
from errors import BadRequest, Conflict, NotFound, Unavailable

log = logging.getLogger(__name__)


@dataclass
class NewDefinition:
    """What a new definition is made of; what is left unset comes from the source definition when it is
    instantiated from one, else from the defaults."""

    name: str
    parent_path_part_id: uuid.UUID
    description: str | None = None
    instruction_path_part_id: uuid.UUID | None = None
    max_run_duration_seconds: int | None = None
    approval_required: bool | None = None
    is_template: bool = False
    selected_skill_ids: list[uuid.UUID] | None = None
    common_file_path_part_ids: list[uuid.UUID] | None = None


@dataclass
class DefinitionEdit:
    """A definition's editable fields, all set at once (PUT); the instruction, skills and common
    files keep their value when None, and so does the folder."""

    name: str
    description: str | None
    max_run_duration_seconds: int | None
    is_active: bool
    approval_required: bool
    parent_path_part_id: uuid.UUID | None = None
    instruction_path_part_id: uuid.UUID | None = None
    selected_skill_ids: list[uuid.UUID] | None = None
    common_file_path_part_ids: list[uuid.UUID] | None = None


async def get_definition(
    session: AsyncSession, who: Principal, definition_id: uuid.UUID
) -> tuple[Workflow, V1Definition]:
    wf = await workflow_repo.tenant_workflow(session, who.tenant_id, definition_id)
    if wf is None:
        raise NotFound("Workflow definition not found")
    return wf, await v1_definition_repo.ensure(session, wf)


async def create_definition(
    session: AsyncSession,
    who: Principal,
    body: NewDefinition,
    *,
    created_from: Workflow | None = None,
) -> tuple[Workflow, V1Definition]:
    """A new definition starts from the default graph, or from `created_from` (instantiate), whose
    graph, instruction text and v1 fields it copies where `body` leaves them unset.

    Raises:
        NotFound: the parent folder or instruction document does not exist.
        Conflict: the name is taken in the tenant; the parent is a run's folder.
    """
    _no_skills(body.selected_skill_ids)
    parent = await v1_resources.parent_folder(session, who, body.parent_path_part_id)
    if parent.run_id is not None:
        raise Conflict("A workflow cannot live in a run's folder")
    if await workflow_repo.name_taken(session, who.tenant_id, body.name):
        raise Conflict(f"A workflow named '{body.name}' already exists")
    src = await v1_definition_repo.fields(session, created_from.id) if created_from is not None else None
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
        raise Conflict(f"A workflow named '{body.name}' already exists") from None
    path_part = uuid.uuid4()
    instruction_pp = body.instruction_path_part_id
    if instruction_pp is not None:
        await v1_resources.document_by_path_part(session, who, instruction_pp)
    else:
        src_doc = (
            await folders_repo.document_by_path_part(session, None, src.instruction_path_part_id)
            if src is not None
            else None
        )
        doc = v1_definition_repo.text_document(
            who.tenant_id,
            path_part,
            v1.child_path(parent.materialized_path, body.name),
            INSTRUCTION_NAME,
            (src_doc.text or "") if src_doc else "",
        )
        session.add(doc)
        await session.flush()
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
        common_file_path_part_ids=await _common_files(session, who, body.common_file_path_part_ids)
        if body.common_file_path_part_ids is not None
        else (src.common_file_path_part_ids if src else None),
    )
    session.add(d)
    await session.flush()
    return wf, d


def _no_skills(ids: list[uuid.UUID] | None) -> None:
    """Skills are not modelled: naming one is refused (as on runs), never stored and ignored."""
    if ids:
        raise BadRequest("selected_skill_ids: no such skills (this service has no skills)")


def _ids(values: list[uuid.UUID] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


async def _common_files(
    session: AsyncSession, who: Principal, ids: list[uuid.UUID] | None
) -> list[str] | None:
    """`common_file_path_part_ids` as stored, once every id is a document or folder of the caller's tenant.

    Raises:
        NotFound: an id names nothing the caller's tenant holds (another tenant's document looks the same).
    """
    if ids is None:
        return None
    readable = await v1_draft_repo.readable_scope(session, who.tenant_id, ids)
    for pp in ids:
        if pp not in readable:
            raise NotFound(f"common_file_path_part_ids: document or folder {pp} not found")
    return _ids(ids)


async def update_definition(
    session: AsyncSession, who: Principal, definition_id: uuid.UUID, body: DefinitionEdit
) -> tuple[Workflow, V1Definition]:
    """PUT semantics, except instruction, skills and common files, which null retains.

    Raises:
        Conflict: name taken; a move while a run is in progress.
    """
    _no_skills(body.selected_skill_ids)
    wf, d = await get_definition(session, who, definition_id)
    if body.name != wf.name and await workflow_repo.name_taken(
        session, who.tenant_id, body.name, exclude=wf.id
    ):
        raise Conflict(f"A workflow named '{body.name}' already exists")
    if body.parent_path_part_id is not None and body.parent_path_part_id != d.parent_path_part_id:
        parent = await v1_resources.parent_folder(session, who, body.parent_path_part_id)
        if parent.run_id is not None:
            raise Conflict("A workflow cannot live in a run's folder")
        busy = await workflow_repo.has_unfinished_run(session, wf.id)
        if busy:
            raise Conflict("The workflow has a run in progress; it cannot be moved now")
        d.parent_path_part_id = parent.path_part_id
    if body.instruction_path_part_id is not None:
        await v1_resources.document_by_path_part(session, who, body.instruction_path_part_id)
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
        d.common_file_path_part_ids = await _common_files(session, who, body.common_file_path_part_ids)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A workflow named '{body.name}' already exists") from None
    return wf, d


async def delete_definition(
    session: AsyncSession, who: Principal, definition_id: uuid.UUID, data_dir: Any, client: Client
) -> None:
    """Delete with its runs (as `DELETE /wf/{id}/`) and its schedule. Raises Conflict while a run has
    not finished."""
    wf, _ = await get_definition(session, who, definition_id)
    await delete_workflow(session, wf, data_dir)
    try:
        await v1_schedules.disarm(client, definition_id)
    except Unavailable as err:
        # The definition is gone; its schedule removes itself at its next firing (nothing to fire).
        log.warning("schedule of deleted definition %s left for now: %s", definition_id, err)
