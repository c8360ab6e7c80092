"""Run endpoints: `/wf/{id}/run/`, `/wf/{id}/start_run/`, `/wf/{id}/runs/` and the `/run/` Runs API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import (
    ClientDep,
    Page,
    PageSize,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    eager_start,
    large_body,
)
from api.pyspur import presenters
from api.pyspur.schemas import (
    BatchRunRequest,
    PartialRunRequest,
    RunResponse,
    RunStateChangeResponse,
    StartRunRequest,
    TaskResponse,
)
from core import batches, offload, run_waiters, runs
from core.stored_workflows import get_workflow
from core.workflow_versions import parse_id
from db import run_queries, run_state
from errors import NotFound
from run_status import RunStatus

wf_router = APIRouter(prefix="/wf", tags=["runs"])
run_router = APIRouter(prefix="/run", tags=["runs"])
RunType = Annotated[str, Query(min_length=1, max_length=64)]


@wf_router.post("/{workflow_id}/run/")
async def run_blocking(
    workflow_id: str,
    body: StartRunRequest,
    request: Request,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
    run_type: RunType = "interactive",
) -> Any:
    """Run and wait until it ends or pauses (bounded by RUN_BLOCKING_TIMEOUT_SECONDS): `{node_id: outputs}`
    so far; 202 with the run if it is still going."""
    inputs = _with_files(body)
    eager = eager_start(request)
    run_id = uuid.uuid4()
    # Entered before the start: with an eager start the run may end before start_run returns.
    with run_waiters.expect(run_id) as here:
        run = await runs.start_run(
            session,
            client,
            settings,
            who,
            workflow_id,
            inputs,
            run_type=run_type,
            parent_run_id=body.parent_run_id,
            eager=eager,
            run_id=run_id,
        )
        result = await runs.wait_until_settled(
            session,
            client,
            run.id,
            settings.run_blocking_timeout_seconds,
            watch_pause=runs.may_pause(run),
            here=here if eager and settings.run_blocking_answer_in_process else None,
        )
    if result is not None and result.recorded and result.outputs_complete:
        return result.outputs
    fresh = await runs.get_run(session, who, run.id)
    if fresh.status in (RunStatus.PENDING, RunStatus.RUNNING):
        return JSONResponse(
            presenters.run(fresh, "Run still in progress").model_dump(mode="json"), status_code=202
        )
    return runs.outputs_so_far(fresh)


def _with_files(body: StartRunRequest) -> dict[str, Any] | None:
    inputs = (
        {k: dict(v) for k, v in (body.initial_inputs or {}).items()}
        if body.initial_inputs is not None
        else None
    )
    for node_id, paths in (body.files or {}).items():
        if inputs is not None and node_id in inputs:
            inputs[node_id]["files"] = paths
    return inputs


@wf_router.post("/{workflow_id}/start_batch_run/", response_model=RunResponse)
async def start_batch_run(
    workflow_id: str,
    body: BatchRunRequest,
    request: Request,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> RunResponse:
    """A run per dataset row, at most `mini_batch_size` at once, under one parent run (returned PENDING)."""
    run = await batches.start_batch_run(
        session,
        client,
        settings,
        who,
        workflow_id,
        body.dataset_id,
        body.mini_batch_size,
        eager=eager_start(request),
    )
    return presenters.run(await runs.get_run(session, who, run.id))


@wf_router.post("/{workflow_id}/run_partial/")
async def run_partial(
    workflow_id: str,
    body: PartialRunRequest,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    """Run `node_id` with precomputed outputs for upstream nodes; nothing is stored: `{node_id: outputs}`."""
    return await runs.run_partial(
        session, client, settings, who, workflow_id, body.node_id, body.initial_inputs, body.partial_outputs
    )


@wf_router.post("/{workflow_id}/start_run/", response_model=RunResponse)
async def start_run(
    workflow_id: str,
    body: StartRunRequest,
    request: Request,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
    run_type: RunType = "interactive",
) -> Response:
    run = await runs.start_run(
        session,
        client,
        settings,
        who,
        workflow_id,
        body.initial_inputs,
        run_type=run_type,
        parent_run_id=body.parent_run_id,
        eager=eager_start(request),
    )
    # The inputs just stored are not read back, and large ones are checked and encoded in a thread:
    # on the event loop, a 1.7 MB input held every other request for a few hundred ms.
    inputs = run.initial_inputs
    fresh = await runs.get_run(session, who, run.id, inputs=inputs is None)
    return await offload.run(
        large_body(request), lambda: presenters.encoded(presenters.run(fresh, inputs=inputs))
    )


@wf_router.get("/{workflow_id}/runs/", response_model=list[RunResponse])
async def list_workflow_runs(
    workflow_id: str,
    session: SessionDep,
    who: PrincipalDep,
    page: Page = 1,
    page_size: PageSize = 10,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    status: RunStatus | None = None,
) -> list[RunResponse]:
    wf = await get_workflow(session, who, workflow_id)
    rows = await run_queries.list_runs(
        session,
        who.tenant_id,
        page=page,
        page_size=page_size,
        workflow_id=wf.id,
        status=status,
        start_date=_as_utc(start_date),
        end_date=_as_utc(end_date),
    )
    return [presenters.run(r) for r in rows]


def _as_utc(value: datetime | None) -> datetime | None:
    """PySpur's clients send back the naive UTC times it serves; read them as UTC, not server-local."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@run_router.get("/", response_model=list[RunResponse])
async def list_all_runs(
    session: SessionDep,
    who: PrincipalDep,
    page: Page = 1,
    page_size: PageSize = 10,
    parent_only: bool = True,
    run_type: Annotated[str | None, Query(max_length=64)] = None,
) -> list[RunResponse]:
    rows = await run_queries.list_runs(
        session, who.tenant_id, page=page, page_size=page_size, parent_only=parent_only, run_type=run_type
    )
    return [presenters.run(r) for r in rows]


@run_router.get("/{run_id}/", response_model=RunResponse)
async def get_run(run_id: str, session: SessionDep, who: PrincipalDep) -> RunResponse:
    return presenters.run(await runs.get_run(session, who, run_id))


@run_router.get("/{run_id}/status/", response_model=RunResponse)
async def get_run_status(run_id: str, session: SessionDep, who: PrincipalDep) -> RunResponse:
    return presenters.run(await runs.get_run(session, who, run_id))


@run_router.get("/{run_id}/tasks/", response_model=list[TaskResponse])
async def get_run_tasks(run_id: str, session: SessionDep, who: PrincipalDep) -> list[TaskResponse]:
    return presenters.run(await runs.get_run(session, who, run_id)).tasks


@run_router.get("/{run_id}/state_history/", response_model=list[RunStateChangeResponse])
async def get_run_state_history(
    run_id: str, session: SessionDep, who: PrincipalDep
) -> list[RunStateChangeResponse]:
    """Every move of the run's status, draft state and approval state, oldest first."""
    changes = await run_state.history(session, who.tenant_id, parse_id(run_id, "Run"))
    if changes is None:
        raise NotFound("Run not found")
    return [RunStateChangeResponse.model_validate(c) for c in changes]


@run_router.delete("/{run_id}/", status_code=204)
async def delete_run(run_id: str, session: SessionDep, who: PrincipalDep) -> Response:
    await runs.delete_run(session, who, run_id)
    return Response(status_code=204)


@run_router.get("/{run_id}/children/", response_model=list[RunResponse])
async def get_children(
    run_id: str, session: SessionDep, who: PrincipalDep, page: Page = 1, page_size: PageSize = 100
) -> list[RunResponse]:
    parent = await runs.get_run(session, who, parse_id(run_id, "Run"))
    rows = await run_queries.list_runs(
        session, who.tenant_id, page=page, page_size=page_size, parent_run_id=parent.id
    )
    return [presenters.run(r) for r in rows]
