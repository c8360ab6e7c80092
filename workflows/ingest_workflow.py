"""`IngestDocumentWorkflow`: extract an upload's text, then settle its run's inputs (maybe starting the run).

A run that auto-starts is started as an abandoned child, so the start
is durable (retried by Temporal, never duplicated: its workflow id is the run's).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        IngestActivitiesContract,
        IngestInput,
        RunInput,
        RunWorkflowContract,
        SettleResult,
    )
    from workflows.search_attributes import of_new_run, temporal_workflow_id

_TIMEOUT = timedelta(seconds=60)
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=20)


@workflow.defn(name="IngestDocumentWorkflow")
class IngestDocumentWorkflow:
    @workflow.run
    async def run(self, inp: IngestInput) -> str:
        status = await workflow.execute_activity_method(
            IngestActivitiesContract.ingest_document,
            inp.document_id,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        if inp.run_id is None:
            return status
        settled = await workflow.execute_activity_method(
            IngestActivitiesContract.settle_run_inputs,
            inp.run_id,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        if settled.run_input is not None:
            ri = settled.run_input
            # An earlier attempt of this workflow task may have started it already.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await self._start_run(ri, settled)
        return status

    @staticmethod
    async def _start_run(ri: RunInput, settled: SettleResult) -> None:
        await workflow.start_child_workflow(
            RunWorkflowContract.run,
            ri,
            id=temporal_workflow_id(ri.run_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
            # Never a second execution of a run whose execution already closed.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            execution_timeout=timedelta(seconds=settled.execution_timeout_seconds)
            if settled.execution_timeout_seconds
            else None,
            search_attributes=of_new_run(ri.run_id, ri.workflow_id),
            memo={
                "workflow_name": ri.workflow_name,
                "workflow_id": ri.workflow_id,
                "run_type": settled.run_type,
            },
        )
