"""Human-in-the-loop and cancel endpoints under `/wf/` (registered before `/wf/{workflow_id}/`)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ClientDep, Page, PageSize, PrincipalDep, SessionDep
from api.pyspur import presenters
from api.pyspur.schemas import PausedWorkflowResponse, PauseHistoryResponse, ResumeRunRequest, RunResponse
from core import pauses
from workflows.contracts import Decision

router = APIRouter(prefix="/wf", tags=["pauses"])


@router.get("/paused_workflows/", response_model=list[PausedWorkflowResponse])
async def paused_workflows(
    session: SessionDep, who: PrincipalDep, page: Page = 1, page_size: PageSize = 10
) -> list[PausedWorkflowResponse]:
    return [presenters.paused(*row) for row in await pauses.paused_runs(session, who, page, page_size)]


@router.get("/pause_history/{run_id}/", response_model=list[PauseHistoryResponse])
async def pause_history(run_id: str, session: SessionDep, who: PrincipalDep) -> list[PauseHistoryResponse]:
    return [presenters.pause(p) for p in await pauses.pause_history(session, who, run_id)]


@router.post("/process_pause_action/{run_id}/", response_model=RunResponse)
async def process_pause_action(
    run_id: str, body: ResumeRunRequest, session: SessionDep, client: ClientDep, who: PrincipalDep
) -> RunResponse:
    decision = Decision(
        action=body.action,
        inputs=body.inputs,
        user_id=body.user_id,
        comments=body.comments,
        node_id=body.node_id,
        decided_by=str(who.user_id),
    )
    run = await pauses.decide(session, client, who, run_id, decision)
    return presenters.run(run, "Decision recorded; the run continues as decided.")


@router.post("/cancel_workflow/{run_id}/", response_model=RunResponse)
async def cancel_workflow(
    run_id: str, session: SessionDep, client: ClientDep, who: PrincipalDep
) -> RunResponse:
    run = await pauses.cancel(session, client, who, run_id)
    return presenters.run(run, "Workflow has been canceled successfully.")
