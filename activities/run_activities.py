"""The run and batch activities (`contracts.RunActivitiesContract`): the sandboxed PythonFuncNode, batch rows and the writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.sandbox.pool import SandboxError, SandboxLimits, SandboxPool
from core import run_waiters, storable
from db import batch_repo, failures, repo
from run_status import RunStatus
from telemetry.logs import bind_ids
from telemetry.metrics import get_metrics
from telemetry.tracing import span
from workflows.contracts import (
    CreateChildRunInput,
    FinalizeBatchInput,
    FinalizeInput,
    LoadRowsInput,
    ProgressInput,
    PythonBatchInput,
    PythonBatchResult,
    PythonItem,
    PythonNodeInput,
    RecordDecisionInput,
    RecordPauseInput,
    RecordRowsInput,
    RunActivitiesContract,
    RunResult,
)
from workflows.node_kinds.base import DATA_ERROR

GROUP_RESULT_BYTES = 1024 * 1024
UNSTORABLE = "unstorable_output"


def _storable(outputs: dict[str, Any]) -> dict[str, Any]:
    """User code's outputs, if they can be stored and handed on; a value that cannot would fail every
    write (and every retry) of the run, so the node fails here instead, saying where.

    Raises:
        ApplicationError: non-retryable, type `unstorable_output`.
    """
    if (problem := storable.problem(outputs, ("output",))) is not None:
        raise ApplicationError(f"The node's {problem}", type=UNSTORABLE, non_retryable=True)
    return outputs


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A write the database refuses for its values fails for good (`data_error`): retrying it cannot
    succeed, and a retried workflow-task write would loop for ever. A lost connection still retries."""
    try:
        yield
    except ApplicationError:
        raise
    except Exception as err:
        if not failures.permanent(err):
            raise
        message = storable.printable(str(getattr(err, "orig", None) or err))[:500]
        raise ApplicationError(
            f"The database refused the write: {message}", type=DATA_ERROR, non_retryable=True
        ) from err


def _item(outcome: dict[str, Any] | SandboxError) -> PythonItem:
    if isinstance(outcome, SandboxError):
        return PythonItem(error=storable.printable(outcome.message), kind=outcome.kind)
    if (problem := storable.problem(outcome, ("output",))) is not None:
        return PythonItem(error=f"The node's {problem}", kind=UNSTORABLE)
    return PythonItem(outputs=outcome)


log = logging.getLogger(__name__)


class RunActivities(RunActivitiesContract):
    """Activity implementations with their dependencies injected by `worker.py` (or a test)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], sandbox: SandboxPool, limits: SandboxLimits
    ) -> None:
        self._sessions = sessions
        self._sandbox = sandbox
        self._limits = limits

    async def run_python_node(self, arg: PythonNodeInput) -> dict[str, Any]:
        """Record progress, then run the node's code in a sandbox process, heartbeating meanwhile.

        Raises:
            ApplicationError: non-retryable, typed by the sandbox outcome (timeout, memory_limit, ...).
        """
        run_id = uuid.UUID(arg.run_id)
        bind_ids(run_id=arg.run_id, node_id=arg.node_id)
        limits = self._limits.lowered_by(dict(arg.limits))
        with span("sandbox", {"node.id": arg.node_id, "sandbox.wall_seconds": limits.wall_seconds}) as s:
            try:
                return await self._run_sandboxed(run_id, arg, limits)
            except ApplicationError as err:
                s.set_attribute("sandbox.outcome", err.type or "error")
                raise

    async def _run_sandboxed(
        self, run_id: uuid.UUID, arg: PythonNodeInput, limits: SandboxLimits
    ) -> dict[str, Any]:
        job = asyncio.create_task(
            self._sandbox.run(arg.code, arg.inputs, output_schema=arg.output_schema, limits=limits)
        )
        info = activity.info()
        beat = (info.heartbeat_timeout.total_seconds() / 3) if info.heartbeat_timeout else 1.0
        try:
            if arg.record:
                # The progress write overlaps the user code instead of delaying it.
                await self._progress(run_id, arg)
            while True:
                done, _ = await asyncio.wait({job}, timeout=beat)
                if done:
                    return _storable(job.result())
                activity.heartbeat()
        except SandboxError as err:
            _count_kill(err)
            # The message may quote user code's own exception: it is stored with the task.
            raise ApplicationError(
                storable.printable(err.message), type=err.kind, non_retryable=True
            ) from err
        finally:
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)

    async def _progress(self, run_id: uuid.UUID, arg: PythonNodeInput) -> None:
        """Best effort while the database is away: the run's later writes (retried for about an hour)
        carry the same rows, and a restart of PostgreSQL must not spend the node's few attempts (the
        chaos soak saw a run fail so). A refused value still fails the node (`_refusals`)."""
        try:
            with _refusals():
                async with self._sessions() as session, session.begin():
                    await repo.record_progress(session, run_id, arg.tasks, arg.attempt)
        except ApplicationError:
            raise
        except Exception as err:
            if not failures.unavailable(err):
                raise
            activity.logger.warning("progress of run %s not written: %s", run_id, type(err).__name__)

    async def run_python_batch(self, arg: PythonBatchInput) -> PythonBatchResult:
        """Run one Python node for several batch rows in one sandbox process; nothing is written.

        Raises:
            ApplicationError: non-retryable, when the sandbox process as a whole failed (each row
                then runs on its own).
        """
        limits = self._limits.lowered_by(dict(arg.limits))
        try:
            outcomes = await self._sandbox.run_many(
                arg.code, arg.items, output_schema=arg.output_schema, limits=limits
            )
        except SandboxError as err:
            _count_kill(err)
            # The message may quote user code's own exception: it is stored with the task.
            raise ApplicationError(
                storable.printable(err.message), type=err.kind, non_retryable=True
            ) from err
        result = PythonBatchResult(items=[_item(o) for o in outcomes])
        # The result is recorded in the workflow's history, where a payload may not exceed 2 MB:
        # a group with large outputs is refused, and its rows run (and are recorded) one by one.
        if len(result.model_dump_json()) > GROUP_RESULT_BYTES:
            raise ApplicationError("group result too large", type="group_too_large", non_retryable=True)
        return result

    async def finalize_run(self, arg: FinalizeInput) -> RunResult:
        """Write the run's terminal state once; a repeated call answers with what is stored."""
        with _refusals():
            async with self._sessions() as session, session.begin():
                recorded, status = await repo.finalize(session, arg)
        if recorded:
            log.info("run %s ended %s", arg.run_id, arg.status.value)
            run_waiters.recorded(arg.run_id, arg.status == RunStatus.COMPLETED, arg.outputs)
        # The outputs are not echoed: the workflow has them, and this result is recorded in history.
        return RunResult(
            run_id=arg.run_id,
            status=arg.status if recorded else (status or arg.status),
            outputs={},
            error=arg.error,
            recorded=recorded,
        )

    async def create_child_run(self, arg: CreateChildRunInput) -> None:
        """Write a SubworkflowNode's child run row before its execution starts (once)."""
        with _refusals():
            try:
                async with self._sessions() as session, session.begin():
                    if await repo.run_exists(session, uuid.UUID(arg.parent_run_id)):
                        await repo.create_child_run(session, arg)
            except IntegrityError as err:
                # The workflow (or its pinned version) was deleted after this run started: the node fails.
                raise ApplicationError(
                    f"Workflow '{arg.workflow_id}' no longer exists", type="gone", non_retryable=True
                ) from err

    async def load_dataset_rows(self, arg: LoadRowsInput) -> list[dict[str, Any]]:
        """A page of a dataset's rows, in order, for a batch chunk."""
        with _refusals():
            async with self._sessions() as session:
                return await batch_repo.load_rows(session, uuid.UUID(arg.dataset_id), arg.start, arg.limit)

    async def record_batch_rows(self, arg: RecordRowsInput) -> int:
        """Record finished batch rows (child runs, tasks, output lines, parent counters) once."""
        with _refusals():
            async with self._sessions() as session, session.begin():
                recorded = await batch_repo.record_rows(session, arg)
        if recorded:
            rows = get_metrics().batch_rows
            failed = sum(1 for r in arg.rows if r.status != RunStatus.COMPLETED)
            rows.labels("done").inc(len(arg.rows) - failed)
            rows.labels("failed").inc(failed)
        return recorded

    async def finalize_batch(self, arg: FinalizeBatchInput) -> RunResult:
        """The batch parent's terminal write (first terminal write wins)."""
        with _refusals():
            async with self._sessions() as session, session.begin():
                return await batch_repo.finalize_batch(session, arg)

    async def record_progress(self, arg: ProgressInput) -> None:
        """Write task rows that settled while other nodes are still running or paused."""
        with _refusals():
            async with self._sessions() as session, session.begin():
                await repo.record_progress(session, uuid.UUID(arg.run_id), arg.tasks, arg.attempt)

    async def record_pause(self, arg: RecordPauseInput) -> None:
        """Write a pause when it opens, so paused lists need no Temporal query."""
        with _refusals():
            async with self._sessions() as session, session.begin():
                if await repo.run_exists(session, uuid.UUID(arg.run_id), arg.attempt):
                    await repo.record_pause(session, arg)

    async def record_decision(self, arg: RecordDecisionInput) -> None:
        """Write who decided a pause, how, and when; idempotent (only an open pause is completed)."""
        with _refusals():
            async with self._sessions() as session, session.begin():
                await repo.record_decision(session, arg)


_LIMIT_KINDS = frozenset({"timeout", "cpu_limit", "memory_limit"})


def _count_kill(err: SandboxError) -> None:
    if err.kind in _LIMIT_KINDS:
        get_metrics().sandbox_kills.labels(err.kind).inc()
