"""`RunWorkflow`: the Temporal glue that interprets a definition snapshot with `graph.RunState`.

Pure nodes are evaluated inline (they are deterministic). PythonFuncNode runs the activity
`run_python_node`, called by name: first as a local activity bounded by the fast-path limit, then,
if it needs longer, as a regular heartbeating activity. The terminal state is written by the local
activity `finalize_run` before the execution closes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from run_status import RunStatus
    from workflows import graph, nodes
    from workflows import search_attributes as sa
    from workflows.schema import FinalizeInput, PythonNodeInput, RunInput, RunResult, TaskRecord

_LIMIT_KEYS = ("wall_seconds", "cpu_seconds", "memory_mb", "output_bytes")


@workflow.defn(name="RunWorkflow")
class RunWorkflow:
    def __init__(self) -> None:
        self._state: graph.RunState | None = None

    @workflow.query(name="tasks")
    def tasks(self) -> list[TaskRecord]:
        return self._state.task_list() if self._state else []

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        state = graph.RunState(graph.GraphPlan.build(inp.definition))
        self._state = state
        flushed: dict[str, TaskRecord] = {}
        in_flight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        try:
            await self._drive(inp, state, flushed, in_flight)
        except (asyncio.CancelledError, CancelledError):
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
            state.cancel("Run canceled", workflow.now())
            await self._finalize(inp, state)
            raise
        result = await self._finalize(inp, state)
        if result.status == RunStatus.FAILED:
            # Failing the execution makes the failure visible as such in the Temporal UI.
            raise ApplicationError(
                result.error or "Run failed", result.model_dump(mode="json"), non_retryable=True
            )
        return result

    async def _drive(
        self,
        inp: RunInput,
        state: graph.RunState,
        flushed: dict[str, TaskRecord],
        in_flight: dict[str, asyncio.Task[dict[str, Any]]],
    ) -> None:
        plan = state.plan
        state.start(plan.input_node_id, {}, workflow.now())
        state.complete(
            plan.input_node_id,
            nodes.input_node_output(plan.by_id[plan.input_node_id], inp.input_payload),
            workflow.now(),
        )
        while True:
            for node_id in state.ready():
                decision = state.decide(node_id)
                now = workflow.now()
                if decision is None:
                    state.skip(node_id, now)
                    continue
                node = plan.by_id[node_id]
                state.start(node_id, decision.inputs, now)
                if node.node_type == "PythonFuncNode":
                    in_flight[node_id] = asyncio.create_task(
                        self._python_node(inp, state, flushed, node_id, decision.inputs)
                    )
                    continue
                try:
                    out = nodes.evaluate_pure(node, decision.inputs)
                except Exception as exc:
                    state.fail(node_id, f"{type(exc).__name__}: {exc}", now)
                    break
                if out is None:
                    state.skip(node_id, now)
                else:
                    state.complete(node_id, out, now)
            if state.failed_node is not None:
                for task in in_flight.values():
                    task.cancel()
                await asyncio.gather(*in_flight.values(), return_exceptions=True)
                return
            if not in_flight:
                if state.ready():
                    continue
                return
            await workflow.wait(list(in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
            for node_id, task in list(in_flight.items()):
                if not task.done():
                    continue
                del in_flight[node_id]
                try:
                    state.complete(node_id, task.result(), workflow.now())
                except (ActivityError, ApplicationError) as err:
                    state.fail(node_id, _activity_error_text(err), workflow.now())

    async def _python_node(
        self,
        inp: RunInput,
        state: graph.RunState,
        flushed: dict[str, TaskRecord],
        node_id: str,
        inputs: dict[str, Any],
    ) -> dict[str, Any]:
        node = state.plan.by_id[node_id]
        changed = [r for r in state.task_list() if flushed.get(r.node_id) != r]
        for r in changed:
            flushed[r.node_id] = r.model_copy()
        policy = inp.policy
        arg = PythonNodeInput(
            run_id=inp.run_id,
            node_id=node_id,
            code=str(node.config.get("code", "")),
            inputs=inputs,
            output_schema=node.config.get("output_schema") or None,
            limits={k: float(node.config[k]) for k in _LIMIT_KEYS if node.config.get(k) is not None},
            tasks=changed,
        )
        wall = float(arg.limits.get("wall_seconds", policy.wall_seconds))
        fast = min(policy.fast_path_seconds, wall)
        if fast > 0:
            # Fast path: a local activity runs inside this workflow task, saving two round trips
            # through the server. User code has no network and no lasting files, so running it
            # again on the slow path after the fast-path limit is harmless.
            try:
                quick: dict[str, Any] = await workflow.execute_local_activity(
                    "run_python_node",
                    arg.model_copy(update={"limits": {**arg.limits, "wall_seconds": fast}}),
                    result_type=dict,
                    start_to_close_timeout=timedelta(seconds=fast + 10),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    summary=node.title,
                )
                return quick
            except (ActivityError, ApplicationError) as err:
                # A failed local activity surfaces as its ApplicationError itself, not wrapped.
                cause = err.cause if isinstance(err, ActivityError) else err
                timed_out = isinstance(cause, ApplicationError) and cause.type == "timeout"
                if (
                    isinstance(cause, ApplicationError)
                    and cause.non_retryable
                    and not (timed_out and wall > fast)
                ):
                    raise
        # Slow path: a regular activity that heartbeats, so cancellation and worker loss reach it.
        # Only now is the run worth marking RUNNING for operators: a fast-path run is already done.
        workflow.upsert_search_attributes([sa.STATUS.value_set(RunStatus.RUNNING.value)])
        result: dict[str, Any] = await workflow.execute_activity(
            "run_python_node",
            arg.model_copy(update={"tasks": []}) if fast > 0 else arg,
            result_type=dict,
            start_to_close_timeout=timedelta(seconds=policy.start_to_close_seconds),
            heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                maximum_attempts=policy.max_attempts, maximum_interval=timedelta(seconds=10)
            ),
            summary=node.title,
        )
        return result

    async def _finalize(self, inp: RunInput, state: graph.RunState) -> RunResult:
        status = state.run_status()
        error = None
        if state.failed_node is not None:
            failed = state.records[state.failed_node]
            error = f"Node '{failed.node_id}' failed: {failed.error}"
        elif state.canceled:
            error = "Run canceled"
        workflow.upsert_search_attributes([sa.STATUS.value_set(status.value)])
        result: RunResult = await workflow.execute_local_activity(
            "finalize_run",
            FinalizeInput(
                run_id=inp.run_id,
                status=status,
                outputs=state.outputs(),
                tasks=state.task_list(),
                error=error,
                end_time=workflow.now(),
            ),
            result_type=RunResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            summary="finalize run",
        )
        return result


def _activity_error_text(err: ActivityError | ApplicationError) -> str:
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, CancelledError):
        return "Canceled"
    return str(cause or err)
