"""`/v1/workflow-runs`: the eleven methods of ksapi's WorkflowRunsApi (thin; rules in v1_run_service)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import ClientDep, PrincipalDep, SessionDep, SessionsDep, SettingsDep, eager_start
from api.v1 import presenters as present
from api.v1 import schemas as w
from core import run_waiters
from core import v1_drafts as drafts
from core import v1_runs as runs
from core.access import is_admin
from db import v1_queries as queries

router = APIRouter(prefix="/v1/workflow-runs", tags=["v1 workflow runs"])
SortBy = Literal["STARTED_AT", "CREATED_AT", "COMPLETED_AT"]
SortDir = Literal["ASC", "DESC"]
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


async def _body(request: Request, model: type[w.StartRunRequest]) -> w.StartRunRequest:
    """`start` arrives with `Content-Type: application/json` and an empty body: that is "no body"."""
    raw = await request.body()
    if not raw.strip():
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        # Reported like FastAPI's own body validation: 422 with the list of problems.
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        ) from None


@router.get("/summary", response_model=w.RunSummaryResponse)
async def summary(
    sessions: SessionsDep,
    who: PrincipalDep,
    since: datetime | None = None,
    until: datetime | None = None,
    definition_id: uuid.UUID | None = None,
) -> w.RunSummaryResponse:
    """Counts per execution state, failure rate, durations and the approval backlog (default: 7 days)."""
    return w.RunSummaryResponse.model_validate(
        await queries.summary(sessions, who, since, until, definition_id)
    )


@router.get("", response_model=w.Page[w.WorkflowRunResponse])
async def list_runs(
    session: SessionDep,
    who: PrincipalDep,
    state: Annotated[list[w.ExecutionState] | None, Query()] = None,
    mine: bool | None = None,
    approvable_by_me: bool | None = None,
    definition_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    sort_by: SortBy = "STARTED_AT",
    sort_dir: SortDir | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    approval_state: Annotated[list[w.ApprovalState] | None, Query()] = None,
    include_tag_ids: Annotated[list[uuid.UUID] | None, Query()] = None,
    exclude_tag_ids: Annotated[list[uuid.UUID] | None, Query()] = None,
) -> w.Page[w.WorkflowRunResponse]:
    """Tenant-wide runs, newest first, with ksapi's filters."""
    filters = queries.RunFilters(
        states=list(state) if state else None,
        mine=mine,
        approvable_by_me=approvable_by_me,
        definition_id=definition_id,
        owner_id=owner_id,
        sort_by=sort_by,
        sort_dir=sort_dir,
        limit=limit,
        offset=offset,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        approval_states=list(approval_state) if approval_state else None,
        include_tag_ids=include_tag_ids,
        exclude_tag_ids=exclude_tag_ids,
    )
    rows, total = await queries.list_runs(session, who, filters, approver=is_admin(who))
    items = await present.runs(session, who, rows)
    return w.Page[w.WorkflowRunResponse](items=items, total=total, limit=limit, offset=offset)


@router.get("/{run_id}", response_model=w.WorkflowRunResponse)
async def get_run(run_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> w.WorkflowRunResponse:
    return await present.run(session, who, await runs.get_run(session, who, run_id), permissions=True)


@router.patch("/{run_id}", response_model=w.WorkflowRunResponse)
async def update_run(
    run_id: uuid.UUID,
    body: w.UpdateRunRequest,
    request: Request,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> w.WorkflowRunResponse:
    edit = drafts.RunEdit(
        name=body.name,
        input_scope=body.input_scope,
        auto_start=body.auto_start,
        user_message=body.user_message,
    )
    run = await drafts.update_run(session, client, settings, who, run_id, edit, eager_start(request))
    return await present.run(session, who, run)


@router.delete("/{run_id}", status_code=204)
async def delete_run(run_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> Response:
    await drafts.delete_run(session, who, run_id)
    return Response(status_code=204)


def _accepted(response: Response, run_id: uuid.UUID) -> None:
    response.headers["Location"] = f"/v1/workflow-runs/{run_id}"


@router.post("/{run_id}/start", status_code=202, response_model=w.WorkflowRunResponse)
async def start_run(
    run_id: uuid.UUID,
    request: Request,
    response: Response,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> w.WorkflowRunResponse:
    body = await _body(request, w.StartRunRequest)
    eager = eager_start(request)
    # Entered before the start: with an eager start the run may end before start_run returns.
    with run_waiters.expect(run_id) as here:
        run = await runs.start_run(
            session, client, settings, who, run_id, body.user_message, eager, here if eager else None
        )
    _accepted(response, run_id)
    return await present.run(session, who, run)


@router.post("/{run_id}/stop", response_model=w.WorkflowRunResponse)
async def stop_run(
    run_id: uuid.UUID, session: SessionDep, client: ClientDep, who: PrincipalDep
) -> w.WorkflowRunResponse:
    return await present.run(session, who, await runs.stop_run(session, client, who, run_id))


async def _again(
    run_id: uuid.UUID,
    request: Request,
    response: Response,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
    *,
    warm: bool,
) -> w.WorkflowRunResponse:
    run = await runs.retry_run(session, client, settings, who, run_id, warm=warm, eager=eager_start(request))
    _accepted(response, run_id)
    return await present.run(session, who, run)


@router.post("/{run_id}/retry", status_code=202, response_model=w.WorkflowRunResponse)
async def retry_run(
    run_id: uuid.UUID,
    request: Request,
    response: Response,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> w.WorkflowRunResponse:
    """FAILED → IN_PROGRESS from scratch against the run's snapshot."""
    return await _again(run_id, request, response, session, client, settings, who, warm=False)


@router.post("/{run_id}/resume", status_code=202, response_model=w.WorkflowRunResponse)
async def resume_run(
    run_id: uuid.UUID,
    request: Request,
    response: Response,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> w.WorkflowRunResponse:
    """FAILED → IN_PROGRESS reusing the outputs of nodes that completed."""
    return await _again(run_id, request, response, session, client, settings, who, warm=True)


@router.post("/{run_id}/clone", status_code=201, response_model=w.WorkflowRunResponse)
async def clone_run(
    run_id: uuid.UUID, body: w.CloneRunRequest, session: SessionDep, who: PrincipalDep
) -> w.WorkflowRunResponse:
    return await present.run(session, who, await drafts.clone_run(session, who, run_id, body.include_inputs))


@router.post("/{run_id}/approval", response_model=w.WorkflowRunResponse)
async def set_approval(
    run_id: uuid.UUID, body: w.SetApprovalRequest, session: SessionDep, who: PrincipalDep
) -> w.WorkflowRunResponse:
    return await present.run(session, who, await runs.set_approval(session, who, run_id, body.reason))


@router.post("/{run_id}/callback", response_model=w.CallbackResponse)
async def callback(
    run_id: uuid.UUID, body: w.CallbackRequest, session: SessionDep, client: ClientDep, who: PrincipalDep
) -> w.CallbackResponse:
    """The runner's terminal write; first terminal write wins, later ones answer `already_terminal`."""
    status = await runs.callback(session, client, who, run_id, body.status, body.error)
    return w.CallbackResponse(status=status)
