"""Starting a stored run's Temporal execution, for every surface and the worker: the engine input
and the start itself."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam

from core import run_waiters
from db import repo
from db.models import Run, Workflow, utcnow
from errors import PayloadTooLarge, Unavailable
from run_status import Cause, RunStatus
from settings import Settings
from telemetry.logs import bind_ids
from telemetry.metrics import get_metrics, tenant
from temporal_client import connect_failure
from workflows.contracts import NodePolicy, RunInput, RunResult, SubworkflowSnapshot
from workflows.definition import WorkflowDefinition
from workflows.search_attributes import RUN_TYPE, TENANT_ID, of_new_run, temporal_workflow_id

log = logging.getLogger(__name__)

ArgT = TypeVar("ArgT")


def node_policy(settings: Settings) -> NodePolicy:
    return NodePolicy(
        heartbeat_timeout_seconds=settings.node_heartbeat_timeout_seconds,
        start_to_close_seconds=settings.sandbox_wall_seconds + 60,
        max_attempts=settings.node_retry_max_attempts,
        wall_seconds=settings.sandbox_wall_seconds,
        fast_path_seconds=settings.python_fast_path_seconds,
        llm_heartbeat_timeout_seconds=settings.llm_heartbeat_timeout_seconds,
        llm_task_queue=settings.llm_task_queue,
    )


def engine_input(
    run: Run,
    wf: Workflow,
    defn: WorkflowDefinition,
    payload: dict[str, Any],
    settings: Settings,
    subworkflows: dict[str, SubworkflowSnapshot],
    attempt: int | None = None,
) -> RunInput:
    """The input of a stored run's execution (`attempt`: set for runs that may be re-run, see RunInput)."""
    return RunInput(
        run_id=str(run.id),
        tenant_id=str(run.tenant_id),
        workflow_id=str(wf.id),
        workflow_name=wf.name,
        definition=defn,
        input_payload=payload,
        policy=node_policy(settings),
        subworkflows=subworkflows,
        triggered_by=str(run.triggered_by) if run.triggered_by else None,
        attempt=attempt,
    )


def check_payload(client: Client, settings: Settings, arg: Any) -> int:
    """Refuse a start whose input Temporal would refuse as too large (its blob size limit), before
    anything is stored or started: the definition, inputs and pinned subworkflows travel in it.
    Returns the encoded size.

    Raises:
        PayloadTooLarge: naming the size and the limit.
    """
    size = sum(p.ByteSize() for p in client.data_converter.payload_converter.to_payloads([arg]))
    if size > settings.temporal_payload_max_bytes:
        raise PayloadTooLarge(
            f"The run's input (definition, inputs and subworkflows) is {size} bytes encoded; "
            f"Temporal accepts at most {settings.temporal_payload_max_bytes}"
        )
    return size


def start_queue(settings: Settings, eager: bool, size: int) -> tuple[str, bool]:
    """The task queue a run starts on, and whether eagerly: a small run started by an API with an
    embedded worker goes to the eager queue and that worker; any other to the shared queue. Decoding a
    large input and running its nodes (local activities) in the API would hold its GIL for long."""
    if eager and size <= settings.api_eager_max_bytes:
        return settings.eager_task_queue, True
    return settings.temporal_task_queue, False


def _too_large(err: RPCError) -> bool:
    """Temporal's refusal of a payload over its size limits (blob size, gRPC message size)."""
    message = err.message.lower()
    return err.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.RESOURCE_EXHAUSTED) and (
        "size" in message or "larger than" in message
    )


async def start_execution(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    run: Run,
    wf: Workflow,
    execution: MethodAsyncSingleParam[Any, ArgT, RunResult],
    arg: ArgT,
    *,
    eager: bool,
    execution_timeout: timedelta | None = None,
    restart: bool = False,
) -> None:
    """Start the run's Temporal execution (id derived from the run id, so a retried start is a no-op).

    `restart` (v1 retry, resume) starts a new execution under the run's Temporal id, ending any
    execution of an earlier attempt still open (a stopped run whose worker was away).
    `execution_timeout` bounds the whole execution (v1 `max_run_duration_seconds`; the reconciler
    then fails the run).

    Raises:
        PayloadTooLarge: the input is over Temporal's size limit; the run is stored FAILED.
        Unavailable: Temporal refused the start; the run is stored FAILED, never left PENDING.
    """
    run_id = str(run.id)
    try:
        size = check_payload(client, settings, arg)
    except PayloadTooLarge as err:
        await _fail_start(session, run, err.detail)
        raise
    task_queue, eager = start_queue(settings, eager, size)
    try:
        handle = await client.start_workflow(
            execution,
            arg,
            id=temporal_workflow_id(run_id),
            task_queue=task_queue,
            # A retried start finds the open execution, or is refused once it closed: never a second run.
            id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING
            if restart
            else WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
            if restart
            else WorkflowIDReusePolicy.REJECT_DUPLICATE,
            execution_timeout=execution_timeout,
            search_attributes=TypedSearchAttributes(
                [
                    *of_new_run(run_id, str(wf.id)).search_attributes,
                    SearchAttributePair(TENANT_ID, str(run.tenant_id)),
                    SearchAttributePair(RUN_TYPE, run.run_type),
                ]
            ),
            memo={"workflow_name": wf.name, "workflow_id": str(wf.id), "run_type": run.run_type},
            static_summary=f"{wf.name}: run {run_id}"[:200],
            static_details=_static_details(run, wf),
            request_eager_start=eager,
        )
    except RuntimeError as err:
        if not connect_failure(err):
            raise
        # Never connected (the API started while Temporal was away): nothing can have landed.
        await _fail_start(session, run, str(err)[:500])
        raise Unavailable(f"Temporal is unavailable; run {run_id} was not started") from err
    except RPCError as err:
        # A timed-out start may still have landed; if the execution exists, the run is started.
        # (Not on a restart: the earlier attempt's execution exists either way.)
        if not restart:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(temporal_workflow_id(run_id)).describe()
                return
        await _fail_start(session, run, err.message)
        if _too_large(err):
            raise PayloadTooLarge(f"Temporal refused the run's input as too large: {err.message}") from err
        raise Unavailable(f"Temporal is unavailable; run {run_id} was not started") from err
    if getattr(handle, "__temporal_eagerly_started", False):
        run_waiters.started_eagerly(run_id)
    bind_ids(run_id=run_id, workflow_id=wf.id)
    m = get_metrics()
    m.runs_started.labels(run.run_type, *tenant(m, run.tenant_id)).inc()
    log.info("started run %s of workflow %s (%s)", run_id, wf.id, run.run_type)


def _static_details(run: Run, wf: Workflow) -> str:
    """What the Temporal UI shows under the execution's summary (markdown)."""
    started_by = f"user `{run.triggered_by}`" if run.triggered_by else "the service"
    return "\n".join(
        [
            f"**Workflow:** {wf.name} (`{wf.id}`)",
            f"**Run:** `{run.id}` ({run.run_type}), started by {started_by}",
            f"**Tenant:** `{run.tenant_id}`",
        ]
    )


async def _fail_start(session: AsyncSession, run: Run, reason: str) -> None:
    # The caller may have read since its last commit (a transaction is then open): end it, so
    # this write is a transaction of its own whatever the caller did before.
    await session.rollback()
    await repo.transition(
        session,
        run.id,
        RunStatus.FAILED,
        cause=Cause.ENGINE,
        error=f"Could not start: {reason}",
        end_time=utcnow(),
    )
    await session.commit()
