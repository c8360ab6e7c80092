"""`RunWorkflow`: one run of a workflow definition snapshot, driven by `driver.GraphRunner`.

The run's terminal state is written by the local activity `finalize_run` before the execution
closes, and the execution closes the way the database says the run ended.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from run_status import RunStatus
    from telemetry import in_workflow
    from workflows import nodes
    from workflows.contracts import (
        Decision,
        DecisionResult,
        FinalizeInput,
        RunActivitiesContract,
        RunInput,
        RunResult,
        RunWorkflowContract,
        TaskRecord,
    )
    from workflows.driver import GraphRunner
    from workflows.node_kinds.base import Pause, db_write, refused_data
    from workflows.search_attributes import publish_status

T = TypeVar("T")


@workflow.defn(name="RunWorkflow")
class RunWorkflow(RunWorkflowContract):
    def __init__(self) -> None:
        self._runner: GraphRunner | None = None

    def _open_pause(self, d: Decision) -> Pause | None:
        pauses = self._runner.pauses if self._runner else {}
        if d.node_id is not None:
            return pauses.get(d.node_id)
        undecided = [p for p in pauses.values() if p.decision is None]
        return min(undecided, key=lambda p: p.seq) if undecided else None

    @workflow.update(name="decide")
    async def decide(self, d: Decision) -> DecisionResult:
        """A person's decision on an open pause; returns once it is applied and recorded."""
        pause = self._open_pause(d)
        # Checked again here: two decisions can both pass the validator before either handler runs.
        if pause is None or pause.decision is not None:
            raise ApplicationError(
                "This pause has already been decided", type="already_decided", non_retryable=True
            )
        pause.decision = d
        runner = self._runner
        assert runner is not None
        await workflow.wait_condition(lambda: pause.recorded or runner.closing)
        if not pause.recorded:
            raise ApplicationError(
                "The run ended before the decision was applied", type="closed", non_retryable=True
            )
        return DecisionResult(node_id=pause.node_id, seq=pause.seq, action=d.action)

    @decide.validator
    def _validate_decide(self, d: Decision) -> None:
        pause = self._open_pause(d)
        if pause is None:
            raise ValueError(
                f"Node '{d.node_id}' is not paused" if d.node_id else "The run has no open pause"
            )
        if pause.decision is not None:
            raise ValueError("This pause has already been decided")

    @workflow.query(name="tasks")
    def tasks(self) -> list[TaskRecord]:
        return self._runner.task_list() if self._runner else []

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        runner = GraphRunner(inp, describe=True)
        self._runner = runner
        try:
            await runner.run()
        except (asyncio.CancelledError, CancelledError):
            runner.cancel("Run canceled")
            runner.closing = True
            result = await self._finalize(inp, runner)
            await workflow.wait_condition(workflow.all_handlers_finished)
            if result.status == RunStatus.CANCELED:
                raise
            # The database already held another terminal state (a workflow task that wrote it was
            # retried after the cancel arrived): Temporal closes as the database says.
            return _close(result)
        except (ActivityError, ApplicationError) as err:
            if (refusal := refused_data(err)) is None:
                raise
            # The database refused a progress write: the run fails saying why, instead of retrying it.
            runner.cancel("Run failed")
            runner.closing = True
            result = await _despite_cancel(self._finalize(inp, runner, refusal))
            await _despite_cancel(workflow.wait_condition(workflow.all_handlers_finished))
            return _close(result)
        runner.closing = True
        # Once the run has settled, a late cancel must not make Temporal disagree with the state
        # just recorded: the terminal write and the close are finished regardless.
        result = await _despite_cancel(self._finalize(inp, runner))
        await _despite_cancel(workflow.wait_condition(workflow.all_handlers_finished))
        return _close(result) if inp.persist else result

    async def _finalize(self, inp: RunInput, runner: GraphRunner, refusal: str | None = None) -> RunResult:
        state = runner.root
        status = state.run_status()
        error = None
        if state.failed_node is not None:
            failed = state.records[state.failed_node]
            error = f"Node '{failed.node_id}' failed: {failed.error}"
        elif state.canceled:
            error = "Run canceled"
        elif state.declined is not None:
            error = state.records[state.declined].error
        runner.settle_bodies(error or "Run ended")
        if refusal is not None:
            status, error = RunStatus.FAILED, _unstored(refusal)
        in_workflow.set_details(f"**Ended:** {status.value}" + (f": {error}" if error else ""))
        if not inp.persist:
            # Nothing is stored; the caller (a partial run) reads the outcome from the result.
            return _small(
                RunResult(run_id=inp.run_id, status=status, outputs=state.outputs(), error=error), runner
            )
        final = FinalizeInput(
            run_id=inp.run_id,
            attempt=inp.attempt,
            status=status,
            outputs=state.outputs() if refusal is None else {},
            tasks=runner.task_list() if refusal is None else _bare(runner.task_list()),
            error=error,
            end_time=workflow.now(),
        )
        try:
            result = await db_write(RunActivitiesContract.finalize_run, final, "finalize run")
        except (ActivityError, ApplicationError) as err:
            if (refused := refused_data(err)) is None or refusal is not None:
                raise
            # The outputs cannot be stored: the run ends without them, saying why (a canceled run
            # stays canceled, so that Temporal and the database agree).
            if final.status != RunStatus.CANCELED:
                final.status, final.error = RunStatus.FAILED, _unstored(refused)
            final.outputs, final.tasks = {}, _bare(final.tasks)
            result = await db_write(RunActivitiesContract.finalize_run, final, "finalize run (bare)")
        publish_status(result.status)
        # Refused outputs stay out of the result too (the result is a payload Temporal must encode).
        outputs = state.outputs() if final.outputs else {}
        return _small(result.model_copy(update={"outputs": outputs}), runner)


# A workflow's result is one payload in its history (2 MB at most); runs with larger outputs return
# only their OutputNodes' outputs, and readers take the rest from the database.
_RESULT_OUTPUT_BYTES = 1024 * 1024


def _small(result: RunResult, runner: GraphRunner) -> RunResult:
    if len(json.dumps(result.outputs, default=str)) <= _RESULT_OUTPUT_BYTES:
        return result
    plan = runner.root.plan
    kept = {
        nid: out for nid, out in result.outputs.items() if nodes.kind_of(plan.by_id[nid].node_type).is_output
    }
    return result.model_copy(update={"outputs": kept, "outputs_complete": False})


def _unstored(refusal: str) -> str:
    return f"The run's results could not be stored: {refusal}"


def _bare(tasks: list[TaskRecord]) -> list[TaskRecord]:
    """Task records without the values the database refused (status, error and times stay)."""
    return [
        t.model_copy(
            update={"inputs": None, "outputs": None, "subworkflow": None, "subworkflow_output": None}
        )
        for t in tasks
    ]


def _close(result: RunResult) -> RunResult:
    """End the execution the way the stored run ended."""
    if result.status == RunStatus.FAILED:
        # Failing the execution makes the failure visible as such in the Temporal UI.
        raise ApplicationError(
            result.error or "Run failed", result.model_dump(mode="json"), non_retryable=True
        )
    return result


async def _despite_cancel(aw: Awaitable[T]) -> T:
    """Await to completion even if the workflow is cancelled meanwhile (the cancel is then moot)."""
    task = asyncio.ensure_future(aw)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                raise
