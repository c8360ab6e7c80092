"""`/wf/` workflow management (PySpur's Workflow Management API)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from api.deps import Page, PageSize, PrincipalDep, SessionDep, SettingsDep
from api.guard import check_form
from api.pyspur import presenters
from api.pyspur.schemas import (
    OutputVariable,
    WorkflowCreateRequest,
    WorkflowResponse,
    WorkflowVersionResponse,
)
from core import offload, stored_workflows
from db import workflow_repo
from db.models import Workflow
from errors import BadRequest, PayloadTooLarge
from workflows.definition import default_definition

router = APIRouter(prefix="/wf", tags=["workflows"])


@router.post("/", response_model=WorkflowResponse)
async def create_workflow(body: WorkflowCreateRequest, session: SessionDep, who: PrincipalDep) -> Response:
    definition = await stored_workflows.prepared(body.definition)
    wf = await stored_workflows.create_workflow(session, who, body.name, body.description, definition)
    return await _shown(session, wf)


async def _shown(session: SessionDep, wf: Workflow) -> Response:
    """One workflow as its routes answer it; for a large graph, presented and encoded in a thread."""
    problems = await stored_workflows.definition_problems(session, wf)
    large = offload.is_large(wf.definition)
    return await offload.run(large, lambda: presenters.encoded(presenters.workflow(wf, problems)))


@router.get("/", response_model=list[WorkflowResponse])
async def list_workflows(
    session: SessionDep, who: PrincipalDep, page: Page = 1, page_size: PageSize = 10
) -> list[WorkflowResponse]:
    return [
        presenters.workflow(wf, await stored_workflows.definition_problems(session, wf))
        for wf in await workflow_repo.workflows(session, who.tenant_id, page, page_size)
    ]


@router.get("/{workflow_id}/", response_model=WorkflowResponse)
async def get_workflow(workflow_id: str, session: SessionDep, who: PrincipalDep) -> Response:
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    return await _shown(session, wf)


@router.put("/{workflow_id}/", response_model=WorkflowResponse)
async def update_workflow(
    workflow_id: str, body: WorkflowCreateRequest, session: SessionDep, who: PrincipalDep
) -> Response:
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    if body.definition is None:
        raise BadRequest("Workflow definition is required to update a workflow")
    definition = await stored_workflows.prepared(body.definition)
    name = body.name.strip() or wf.name
    wf = await stored_workflows.update_workflow(session, wf, name, body.description, definition)
    return await _shown(session, wf)


@router.put("/{workflow_id}/reset/", response_model=WorkflowResponse)
async def reset_workflow(workflow_id: str, session: SessionDep, who: PrincipalDep) -> WorkflowResponse:
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    definition = default_definition().model_dump(mode="json")
    return presenters.workflow(
        await stored_workflows.update_workflow(session, wf, wf.name, wf.description or "", definition)
    )


@router.delete("/{workflow_id}/", status_code=204)
async def delete_workflow(
    workflow_id: str, session: SessionDep, who: PrincipalDep, settings: SettingsDep
) -> Response:
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    await stored_workflows.delete_workflow(session, wf, settings.resolved_data_dir)
    return Response(status_code=204)


@router.post("/{workflow_id}/duplicate/", response_model=WorkflowResponse)
async def duplicate_workflow(workflow_id: str, session: SessionDep, who: PrincipalDep) -> Response:
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    copy = await stored_workflows.create_workflow(
        session, who, f"{wf.name} (Copy)", wf.description or "", dict(wf.definition)
    )
    return await _shown(session, copy)


@router.get("/{workflow_id}/output_variables/", response_model=list[OutputVariable])
async def output_variables(workflow_id: str, session: SessionDep, who: PrincipalDep) -> list[dict[str, str]]:
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    return stored_workflows.output_variables(wf.definition)


@router.get("/{workflow_id}/versions/", response_model=list[WorkflowVersionResponse])
async def list_versions(
    workflow_id: str, session: SessionDep, who: PrincipalDep, page: Page = 1, page_size: PageSize = 10
) -> list[WorkflowVersionResponse]:
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    return [presenters.version(v) for v in await workflow_repo.versions(session, wf.id, page, page_size)]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@router.post("/upload_test_files/")
async def upload_test_files(
    session: SessionDep,
    who: PrincipalDep,
    settings: SettingsDep,
    workflow_id: Annotated[str, Form()],
    node_id: Annotated[str, Form()],
    files: Annotated[list[UploadFile], File()],
) -> dict[str, list[str]]:
    check_form(
        workflow_id=workflow_id, node_id=node_id, **{f"files[{i}]": f.filename for i, f in enumerate(files)}
    )
    wf = await stored_workflows.get_workflow(session, who, workflow_id)
    folder = stored_workflows.test_files_dir(settings.resolved_data_dir, wf.id)
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    saved: list[tuple[str, bytes]] = []
    for upload in files:
        data = await upload.read(settings.upload_max_bytes + 1)
        if len(data) > settings.upload_max_bytes:
            raise PayloadTooLarge(
                f"File '{upload.filename}' exceeds the limit of {settings.upload_max_bytes} bytes"
            )
        name = _UNSAFE.sub("_", (upload.filename or "file").rsplit("/", 1)[-1]).lstrip(".") or "file"
        saved.append((f"{stamp}_{name}", data))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in saved:
        (folder / name).write_bytes(data)
        paths.append(f"test_files/{wf.id}/{name}")
    return {node_id: paths}
