"""v1 run lifecycle: start, stop, retry, resume, approval, callback, each gated by the ksapi 3.18.2
state-by-operation table (`run_status.V1_OPERATIONS`). Drafts are in `v1_draft_service`, lists and the
summary in `db.v1_queries`. State changes go through `db.repo`; Temporal starts through
`core.run_start.start_execution`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from core import access, run_waiters, runs
from core.run_start import start_execution
from core.v1_dispatch import InputProblem, dispatch, start_again
from db import repo, run_queries, v1_definition_repo, workflow_repo
from db import v1_repo as v1
from db.accounts import Principal
from db.models import Run, utcnow
from errors import Conflict, Forbidden
from run_status import ExecutionState, RunStatus, V1Operation, Verdict, v1_rule
from settings import Settings
from workflows.contracts import FinalizeInput
from workflows.run_workflow import RunWorkflow
from workflows.search_attributes import temporal_workflow_id

log = logging.getLogger(__name__)
STOPPED = "Stopped by user"


# The one tenant-run lookup, in v1's words; v1 never needs the run's tasks.
get_run = functools.partial(runs.get_run, missing="Workflow run not found", details=False)


def state_of(run: Run) -> ExecutionState:
    return v1.execution_state(run.status, run.draft_state)


def may(operation: V1Operation, run: Run) -> bool:
    """Whether `operation` acts on the run in its state (False: answer with the run unchanged).

    Raises:
        Conflict: the table refuses the operation in this state.
    """
    state = state_of(run)
    rule = v1_rule(operation, state)
    if rule.verdict == Verdict.REFUSED:
        raise Conflict(rule.explain(state))
    return rule.verdict == Verdict.ACT


async def launch(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    run: Run,
    user_message: str | None,
    from_: list[str],
    eager: bool,
    *,
    cause: str,
    message_history: list[dict[str, Any]] | None = None,
) -> None:
    """Dispatch a draft and start its execution (nothing if a racing start won). `message_history`: the
    earlier messages of the thread a follow-up run starts in.

    Raises:
        Conflict: an upload is still being ingested, or failed ingestion.
    """
    try:
        dispatched = await dispatch(
            session, run, settings, user_message, from_, cause=cause, message_history=message_history
        )
    except InputProblem as err:
        raise Conflict(str(err)) from None
    if dispatched is None:
        return
    run_input, timeout = dispatched
    wf = await workflow_repo.workflow(session, run.workflow_id)
    assert wf is not None
    await start_execution(
        session, client, settings, run, wf, RunWorkflow.run, run_input, eager=eager, execution_timeout=timeout
    )
    await _stop_if_stopped_meanwhile(session, client, run.id)


async def _stop_if_stopped_meanwhile(session: AsyncSession, client: Client, run_id: uuid.UUID) -> None:
    """A stop that landed between the dispatch and the start found no execution to cancel: the
    execution just started is canceled now, so a stopped run never runs on."""
    # READ COMMITTED: this statement sees a stop committed by another request meanwhile.
    if await run_queries.stored_status(session, run_id) == RunStatus.CANCELED.value:
        await _cancel_execution(client, run_id)


async def start_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    run_id: uuid.UUID,
    user_message: str | None,
    eager: bool,
    here: run_waiters.Waiter | None = None,
) -> Run:
    """NOT_STARTED → IN_PROGRESS (idempotent on IN_PROGRESS).

    With `here` (entered before the start), a run whose first workflow task this process took
    (eager start) is given up to `V1_START_WAIT_SECONDS` to record its end here, so a short run is
    answered in its final state and its client's first poll is its last; the state answered is
    always the one stored.

    Raises:
        Conflict: terminal, inputs still ingesting, or an input failed ingestion.
    """
    run = await get_run(session, who, run_id)
    access.ensure_may_change_run(who, run.triggered_by)
    if not may(V1Operation.START, run):
        return run
    await launch(
        session, client, settings, run, user_message, [v1.NOT_STARTED], eager, cause=str(who.user_id)
    )
    if here is not None and here.started_here and settings.v1_start_wait_seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(here.recorded), settings.v1_start_wait_seconds)
    run = await get_run(session, who, run_id)
    if state_of(run) not in (v1.IN_PROGRESS, v1.COMPLETED, v1.FAILED):
        raise Conflict(f"The run is {state_of(run)}")
    return run


async def _cancel_execution(client: Client, run_id: uuid.UUID) -> None:
    """Best effort: the stored state is already final; a worker that is away gets the cancel later."""
    handle = client.get_workflow_handle(temporal_workflow_id(str(run_id)))
    try:
        await asyncio.wait_for(handle.cancel(), 5.0)
    except (RPCError, TimeoutError) as err:
        log.info("cancel of run %s not delivered: %s", run_id, err)


async def stop_run(session: AsyncSession, client: Client, who: Principal, run_id: uuid.UUID) -> Run:
    """IN_PROGRESS → FAILED ("Stopped by user"); any other state is returned unchanged."""
    run = await get_run(session, who, run_id)
    access.ensure_may_change_run(who, run.triggered_by)
    if not may(V1Operation.STOP, run):
        return run
    stopped = await repo.stop(session, run.id, STOPPED, cause=str(who.user_id))
    await session.commit()
    if stopped:
        await _cancel_execution(client, run.id)
    else:
        log.info("stop of run %s refused: %s", run.id, stopped.refusal)
    return await get_run(session, who, run_id)


async def retry_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    run_id: uuid.UUID,
    *,
    warm: bool,
    eager: bool,
) -> Run:
    """FAILED → IN_PROGRESS against the pinned snapshot (a never-started FAILED run re-arms as a draft).

    `warm` (resume) reuses the outputs of nodes that completed.

    Raises:
        Conflict: the run is not FAILED.
    """
    run = await get_run(session, who, run_id)
    access.ensure_may_change_run(who, run.triggered_by)
    may(V1Operation.RETRY, run)
    if not run.v1:
        # Its input is the workflow API's, not a v1 snapshot: re-run it there.
        raise Conflict("This run was started through the workflow API; start it again there")
    started = run.snapshot is not None and run.workflow_version_id is not None
    precomputed = await run_queries.completed_outputs(session, run.id) if warm and started else {}
    how = "Resumed" if warm else "Retried"
    rearmed = await repo.rearm(session, run.id, to_draft=not started, cause=str(who.user_id), reason=how)
    if not rearmed:
        await session.rollback()
        log.info("%s of run %s refused: %s", how, run.id, rearmed.refusal)
        raise Conflict("The run changed meanwhile; read it again")
    await session.commit()
    run = await get_run(session, who, run_id)
    if started:
        await start_again(session, client, settings, run, eager=eager, restart=True, precomputed=precomputed)
        await _stop_if_stopped_meanwhile(session, client, run.id)
        run = await get_run(session, who, run_id)
    return run


async def set_approval(session: AsyncSession, who: Principal, run_id: uuid.UUID, reason: str | None) -> Run:
    """Approve a COMPLETED run of a definition with `approval_required`: every output document, then the run.

    Raises:
        Forbidden: the caller may not approve (owners and admins may). Conflict: not COMPLETED, or
        the definition does not require approval.
    """
    run = await get_run(session, who, run_id, lock=True)
    if not access.is_admin(who):
        raise Forbidden("Only an owner or admin may approve runs")
    may(V1Operation.APPROVE, run)
    if not await v1_definition_repo.approval_required(session, run.workflow_id):
        raise Conflict("This workflow does not require approval")
    approved = await repo.approve(session, run.id, reason, cause=str(who.user_id))
    if not approved:
        log.info("approval of run %s left as it is: %s", run.id, approved.refusal)
        return run  # approved already
    await session.commit()
    return await get_run(session, who, run_id)


async def callback(
    session: AsyncSession, client: Client, who: Principal, run_id: uuid.UUID, status: str, error: str | None
) -> str:
    """The runner's terminal write, through the same idempotent path as the run's own (`repo.finalize`).

    Returns "accepted", or "already_terminal" when a terminal state was stored first.

    Raises:
        Conflict: the run has not started.
    """
    run = await get_run(session, who, run_id)
    access.ensure_may_change_run(who, run.triggered_by)
    if not may(V1Operation.CALLBACK, run):
        return "already_terminal"
    target = RunStatus(status)
    recorded, _ = await repo.finalize(
        session,
        FinalizeInput(
            run_id=str(run.id),
            status=target,
            outputs={},
            tasks=[],
            error=(error or "Run failed") if target == RunStatus.FAILED else error,
            end_time=utcnow(),
        ),
        cause=str(who.user_id),
        reason=f"Run {target.value} by callback",
    )
    await session.commit()
    if not recorded:
        return "already_terminal"
    await _cancel_execution(client, run.id)
    return "accepted"
