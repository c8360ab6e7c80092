"""`/v1/workflow-definitions`: definitions (the `/wf/` workflows) and the runs born under them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from api.deps import ClientDep, PrincipalDep, SessionDep, SettingsDep
from api.guard import check_form
from api.v1 import presenters as present
from api.v1 import schemas as w
from api.v1.routes.runs import Limit, Offset
from core import v1_definitions as defs
from core import v1_drafts as drafts
from core import v1_schedules as schedules
from core.access import is_admin
from db import v1_definition_repo
from db import v1_queries as queries
from errors import PayloadTooLarge

router = APIRouter(prefix="/v1/workflow-definitions", tags=["v1 workflow definitions"])


@router.post("", status_code=201, response_model=w.WorkflowDefinitionResponse)
async def create_definition(
    body: w.CreateDefinitionRequest,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> w.WorkflowDefinitionResponse:
    """A new definition starts from the default graph; edit the graph with `PUT /wf/{id}/`. With a
    `schedule_cadence` it gets its Temporal Schedule."""
    wf, d = await defs.create_definition(
        session,
        who,
        defs.NewDefinition(
            name=body.name,
            parent_path_part_id=body.parent_path_part_id,
            description=body.description,
            instruction_path_part_id=body.instruction_path_part_id,
            max_run_duration_seconds=body.max_run_duration_seconds,
            approval_required=body.approval_required,
            is_template=bool(body.is_template),
            selected_skill_ids=body.selected_skill_ids,
            common_file_path_part_ids=body.common_file_path_part_ids,
        ),
    )
    await schedules.apply(
        session, client, settings, d, body.schedule_cadence, body.schedule_start_at, body.schedule_timezone
    )
    return (await present.definitions(session, who, [(wf, d)], permissions=False))[0]


@router.get("", response_model=w.Page[w.WorkflowDefinitionResponse])
async def list_definitions(
    session: SessionDep,
    who: PrincipalDep,
    mine: bool | None = None,
    search: Annotated[str | None, Query(max_length=255)] = None,
    sort_by: Literal["CREATED_AT", "UPDATED_AT", "NAME"] = "CREATED_AT",
    sort_dir: Literal["ASC", "DESC"] | None = None,
    is_template: bool | None = None,
    needs_approval: bool | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    include_tag_ids: Annotated[list[uuid.UUID] | None, Query()] = None,
    exclude_tag_ids: Annotated[list[uuid.UUID] | None, Query()] = None,
) -> w.Page[w.WorkflowDefinitionResponse]:
    rows, total = await v1_definition_repo.list_definitions(
        session,
        who,
        search=search,
        is_template=is_template,
        needs_approval=needs_approval,
        mine=mine,
        sort_by=sort_by,
        sort_dir=sort_dir,
        limit=limit,
        offset=offset,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        include_tag_ids=include_tag_ids,
        exclude_tag_ids=exclude_tag_ids,
    )
    items = await present.definitions(session, who, rows)
    return w.Page[w.WorkflowDefinitionResponse](items=items, total=total, limit=limit, offset=offset)


@router.get("/{definition_id}", response_model=w.WorkflowDefinitionResponse)
async def get_definition(
    definition_id: uuid.UUID, session: SessionDep, who: PrincipalDep
) -> w.WorkflowDefinitionResponse:
    row = await defs.get_definition(session, who, definition_id)
    return (await present.definitions(session, who, [row]))[0]


@router.put("/{definition_id}", response_model=w.WorkflowDefinitionResponse)
async def update_definition(
    definition_id: uuid.UUID,
    body: w.UpdateDefinitionRequest,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> w.WorkflowDefinitionResponse:
    """PUT: the schedule fields too (absent: unscheduled); `is_active` false pauses the schedule."""
    edit = defs.DefinitionEdit(
        name=body.name,
        description=body.description,
        max_run_duration_seconds=body.max_run_duration_seconds,
        is_active=body.is_active,
        approval_required=body.approval_required,
        parent_path_part_id=body.parent_path_part_id,
        instruction_path_part_id=body.instruction_path_part_id,
        selected_skill_ids=body.selected_skill_ids,
        common_file_path_part_ids=body.common_file_path_part_ids,
    )
    row = await defs.update_definition(session, who, definition_id, edit)
    await schedules.apply(
        session,
        client,
        settings,
        row[1],
        body.schedule_cadence,
        body.schedule_start_at,
        body.schedule_timezone,
    )
    return (await present.definitions(session, who, [row], permissions=False))[0]


@router.delete("/{definition_id}", status_code=204)
async def delete_definition(
    definition_id: uuid.UUID, session: SessionDep, client: ClientDep, settings: SettingsDep, who: PrincipalDep
) -> Response:
    await defs.delete_definition(session, who, definition_id, settings.resolved_data_dir, client)
    return Response(status_code=204)


@router.post("/{template_id}/instantiate", status_code=201, response_model=w.WorkflowDefinitionResponse)
async def instantiate(
    template_id: uuid.UUID, body: w.InstantiateRequest, session: SessionDep, who: PrincipalDep
) -> w.WorkflowDefinitionResponse:
    """Copy a template (or any definition) into a runnable definition."""
    source, _ = await defs.get_definition(session, who, template_id)
    row = await defs.create_definition(
        session,
        who,
        defs.NewDefinition(body.name or f"{source.name} (copy)", body.parent_path_part_id),
        created_from=source,
    )
    return (await present.definitions(session, who, [row], permissions=False))[0]


@router.post("/{definition_id}/runs", status_code=201, response_model=w.WorkflowRunResponse)
async def create_run(
    definition_id: uuid.UUID,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
    files: Annotated[list[UploadFile] | None, File()] = None,
    input_scope: Annotated[str | None, Form()] = None,
    idempotency_key: Annotated[str | None, Form(max_length=255)] = None,
    auto_start: Annotated[bool | None, Form()] = None,
    user_message: Annotated[str | None, Form(max_length=4000)] = None,
    name: Annotated[str | None, Form(min_length=1, max_length=255)] = None,
    selected_skill_ids: Annotated[str | None, Form()] = None,
) -> w.WorkflowRunResponse:
    """A NOT_STARTED draft (multipart form, or no body at all); deprecated `files` make it PENDING."""
    check_form(
        input_scope=input_scope,
        idempotency_key=idempotency_key,
        user_message=user_message,
        name=name,
        selected_skill_ids=selected_skill_ids,
    )
    uploads = []
    for f in files or []:
        check_form(filename=f.filename, content_type=f.content_type)
        content = await f.read()
        if len(content) > settings.upload_max_bytes:
            raise PayloadTooLarge(f"'{f.filename}' exceeds {settings.upload_max_bytes} bytes")
        uploads.append((f.filename or "upload", content, f.content_type))
    form = drafts.CreateRunForm(
        name=name,
        input_scope=input_scope,
        idempotency_key=idempotency_key,
        auto_start=auto_start,
        user_message=user_message,
        selected_skill_ids=selected_skill_ids,
    )
    run = await drafts.create_run(session, client, settings, who, definition_id, form, uploads)
    return await present.run(session, who, run)


@router.get("/{definition_id}/runs", response_model=w.Page[w.WorkflowRunResponse])
async def list_definition_runs(
    definition_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    who: PrincipalDep,
    sort_by: Literal["STARTED_AT", "CREATED_AT", "COMPLETED_AT"] = "STARTED_AT",
    sort_dir: Literal["ASC", "DESC"] | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
) -> w.Page[w.WorkflowRunResponse]:
    del request
    await defs.get_definition(session, who, definition_id)
    filters = queries.RunFilters(
        definition_id=definition_id,
        sort_by=sort_by,
        sort_dir=sort_dir,
        limit=limit,
        offset=offset,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
    )
    rows, total = await queries.list_runs(session, who, filters, approver=is_admin(who))
    items = await present.runs(session, who, rows)
    return w.Page[w.WorkflowRunResponse](items=items, total=total, limit=limit, offset=offset)
