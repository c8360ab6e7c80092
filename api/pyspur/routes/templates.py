"""`/templates/`: PySpur's spur templates, listed and instantiated as workflows of the caller's tenant."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PrincipalDep, SessionDep
from api.pyspur import presenters
from api.pyspur.schemas import TemplateSchema, WorkflowResponse
from core import stored_workflows, templates

router = APIRouter(prefix="/templates", tags=["templates"])


@router.get("/", response_model=list[TemplateSchema])
async def list_templates(_: PrincipalDep) -> list[TemplateSchema]:
    return [
        TemplateSchema(name=t.name, description=t.description, features=t.features, file_name=t.file_name)
        for t in templates.available()
    ]


@router.post("/instantiate/", response_model=WorkflowResponse)
async def instantiate_template(
    body: TemplateSchema, session: SessionDep, who: PrincipalDep
) -> WorkflowResponse:
    wf = await templates.instantiate(session, who, body.file_name)
    return presenters.workflow(wf, await stored_workflows.definition_problems(session, wf))
