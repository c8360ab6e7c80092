"""Builds the worker (workflow + activities with their dependencies); shared by worker.py, the API and tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.ingest_activities import IngestActivities, RunStarts
from activities.llm_activities import LlmActivities
from activities.run_activities import RunActivities
from activities.sandbox.pool import SandboxLimits, SandboxPool
from activities.schedule_activities import ScheduleActivities
from settings import Settings
from telemetry.logs import ActivityLogIds
from workflows.batch_workflow import BatchChunkWorkflow, BatchWorkflow
from workflows.ingest_workflow import IngestDocumentWorkflow
from workflows.run_workflow import RunWorkflow
from workflows.schedule_workflow import ScheduledRunWorkflow


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        wall_seconds=settings.sandbox_wall_seconds,
        cpu_seconds=settings.sandbox_cpu_seconds,
        memory_mb=settings.sandbox_memory_mb,
        output_bytes=settings.sandbox_output_bytes,
    )


@contextlib.asynccontextmanager
async def sandbox_pool(settings: Settings) -> AsyncIterator[SandboxPool]:
    pool = SandboxPool(
        python=settings.sandbox_python,
        isolation=settings.sandbox_isolation,
        limits=sandbox_limits(settings),
    )
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


def build_worker(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    pool: SandboxPool,
    starts: RunStarts,
    *,
    remote_activities: bool = True,
    task_queue: str | None = None,
) -> Worker:
    """The one worker configuration, shared by the worker process, the API's embedded worker and tests.

    `remote_activities=False` makes a worker that runs workflow tasks and local activities only;
    `task_queue` defaults to the shared one (`settings.temporal_task_queue`)."""
    acts = RunActivities(sessions, pool, sandbox_limits(settings))
    llm = LlmActivities(sessions, settings)
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[
            RunWorkflow,
            BatchWorkflow,
            BatchChunkWorkflow,
            IngestDocumentWorkflow,
            ScheduledRunWorkflow,
        ],
        activities=[
            *acts.activities(),
            *IngestActivities(sessions, settings, starts).activities(),
            # Also here for runs started before LLM calls had a queue of their own.
            *llm.activities(),
            *ScheduleActivities(sessions, client, settings, starts).activities(),
        ],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        no_remote_activities=not remote_activities,
        # Paused runs wait in Temporal's history, not in memory: past this many, cached executions
        # are evicted and replayed (a few ms) when they next have work.
        max_cached_workflows=settings.worker_max_cached_workflows,
        # A crashed worker's sticky queue would hold the next workflow task for 10 s by default.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        graceful_shutdown_timeout=timedelta(seconds=5),
        # Heartbeats carry cancels back: sent at least this often, whatever a node's heartbeat timeout.
        max_heartbeat_throttle_interval=timedelta(seconds=settings.worker_heartbeat_throttle_seconds),
        interceptors=[ActivityLogIds()],
        # The interpreter is our own deterministic code (checked by replay tests), so the per-run
        # cost of the import sandbox can be skipped when measured worth it.
        workflow_runner=SandboxedWorkflowRunner(
            # Spans and node metrics must reach the process's real tracer provider and registry.
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                "opentelemetry", "prometheus_client", "telemetry"
            )
        )
        if settings.worker_sandboxed_workflows
        else UnsandboxedWorkflowRunner(),
    )


def build_llm_worker(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> Worker:
    """The worker of the LLM-call queue: activities only, many slots. A call is a wait on the
    provider (a connection, a heartbeat every WORKER_HEARTBEAT_THROTTLE_SECONDS), so one worker
    holds hundreds, while sandboxed Python nodes keep the main queue's smaller limit."""
    return Worker(
        client,
        task_queue=settings.llm_task_queue,
        activities=LlmActivities(sessions, settings).activities(),
        max_concurrent_activities=settings.worker_max_concurrent_llm_calls,
        graceful_shutdown_timeout=timedelta(seconds=5),
        max_heartbeat_throttle_interval=timedelta(seconds=settings.worker_heartbeat_throttle_seconds),
        interceptors=[ActivityLogIds()],
    )
