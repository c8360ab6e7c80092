"""`RunWorkflow`: the Temporal glue that interprets a definition snapshot with `graph.RunState`.

Pure nodes are evaluated inline (they are deterministic). PythonFuncNode runs the activity
`run_python_node`, called by name: first as a local activity bounded by the fast-path limit, then,
if it needs longer, as a regular heartbeating activity. The terminal state is written by the local
activity `finalize_run` before the execution closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from run_status import PauseAction, RunStatus
    from workflows import graph, nodes
    from workflows import search_attributes as sa
    from workflows.node_configs import HumanInterventionNodeConfig
    from workflows.schema import (
        Decision,
        DecisionResult,
        FinalizeInput,
        PauseRecord,
        ProgressInput,
        PythonNodeInput,
        RecordDecisionInput,
        RecordPauseInput,
        RunInput,
        RunResult,
        TaskRecord,
    )

T = TypeVar("T")
_LIMIT_KEYS = ("wall_seconds", "cpu_seconds", "memory_mb", "output_bytes")
_DB_WRITE = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=30)),
}


@dataclass
class _Pause:
    node_id: str
    seq: int
    decision: Decision | None = None
    recorded: bool = False


@workflow.defn(name="RunWorkflow")
class RunWorkflow:
    def __init__(self) -> None:
        self._state: graph.RunState | None = None
        self._pauses: dict[str, _Pause] = {}  # open pauses by node id
        self._pause_seq = 0
        self._closing = False
        self._flushed: dict[str, TaskRecord] = {}

    def _open_pause(self, d: Decision) -> _Pause | None:
        if d.node_id is not None:
            return self._pauses.get(d.node_id)
        undecided = [p for p in self._pauses.values() if p.decision is None]
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
        await workflow.wait_condition(lambda: pause.recorded or self._closing)
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
        return self._state.task_list() if self._state else []

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        state = graph.RunState(graph.GraphPlan.build(inp.definition))
        self._state = state
        in_flight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        try:
            await self._drive(inp, state, in_flight)
        except (asyncio.CancelledError, CancelledError):
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
            state.cancel("Run canceled", workflow.now())
            self._closing = True
            result = await self._finalize(inp, state)
            await workflow.wait_condition(workflow.all_handlers_finished)
            if result.status == RunStatus.CANCELED:
                raise
            # The database already held another terminal state (a workflow task that wrote it was
            # retried after the cancel arrived): Temporal closes as the database says.
            return _close(result)
        self._closing = True
        # Once the run has settled, a late cancel must not make Temporal disagree with the state
        # just recorded: the terminal write and the close are finished regardless.
        result = await _despite_cancel(self._finalize(inp, state))
        await _despite_cancel(workflow.wait_condition(workflow.all_handlers_finished))
        return _close(result)

    async def _drive(
        self,
        inp: RunInput,
        state: graph.RunState,
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
            started_python = False
            for node_id in state.ready():
                decision = state.decide(node_id)
                now = workflow.now()
                if decision is None:
                    state.skip(node_id, now)
                    continue
                node = plan.by_id[node_id]
                state.start(node_id, decision.inputs, now)
                if node.node_type == "PythonFuncNode":
                    started_python = True
                    in_flight[node_id] = asyncio.create_task(
                        self._python_node(inp, state, node_id, decision.inputs)
                    )
                    continue
                if node.node_type == "HumanInterventionNode":
                    # Paused here, before any progress snapshot is taken, so every write agrees.
                    self._pause_seq += 1
                    self._pauses[node_id] = _Pause(node_id, self._pause_seq)
                    state.pause(node_id, dict(decision.inputs), now)
                    in_flight[node_id] = asyncio.create_task(
                        self._human_node(inp, state, node_id, decision.inputs)
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
            # Nodes that settled while others still run (or wait on a person) are written now, so
            # the database never shows a finished node as running. A Python node started in this
            # pass writes the progress itself, so the common path makes no extra write.
            if not started_python:
                settled = _unflushed(state, self._flushed)
                if settled:
                    progress = ProgressInput(run_id=inp.run_id, tasks=settled)
                    await _db_write("record_progress", progress, "progress")
            await workflow.wait(list(in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
            for node_id, task in list(in_flight.items()):
                if not task.done():
                    continue
                del in_flight[node_id]
                try:
                    output = task.result()
                    if state.records[node_id].status not in graph.SETTLED:  # human nodes settle themselves
                        state.complete(node_id, output, workflow.now())
                except (ActivityError, ApplicationError) as err:
                    state.fail(node_id, _activity_error_text(err), workflow.now())
                except Exception as err:  # a node's own fault fails the node, never the workflow task
                    state.fail(node_id, f"{type(err).__name__}: {err}", workflow.now())

    async def _python_node(
        self,
        inp: RunInput,
        state: graph.RunState,
        node_id: str,
        inputs: dict[str, Any],
    ) -> dict[str, Any]:
        node = state.plan.by_id[node_id]
        changed = _unflushed(state, self._flushed)
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

    async def _human_node(
        self, inp: RunInput, state: graph.RunState, node_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        """Pause until a person decides (or the node's timeout acts for them), then settle the node.

        Raises:
            ApplicationError: the pause timed out and the node's `on_timeout` is "fail".
        """
        node = state.plan.by_id[node_id]
        # The typed config: the stored one may hold values pydantic coerced ("5", "false").
        config = nodes.parse_config(node)
        assert isinstance(config, HumanInterventionNodeConfig)
        pause = self._pauses[node_id]
        passthrough = dict(inputs)
        now = workflow.now()
        timeout = config.timeout_seconds
        workflow.upsert_search_attributes([sa.STATUS.value_set(RunStatus.PAUSED.value)])
        await _db_write(
            "record_pause",
            RecordPauseInput(
                run_id=inp.run_id,
                pause=PauseRecord(
                    node_id=node_id,
                    seq=pause.seq,
                    message=config.message,
                    input_data=passthrough,
                    pause_time=now,
                    timeout_at=now + timedelta(seconds=timeout) if timeout else None,
                ),
                tasks=_unflushed(state, self._flushed),
            ),
            f"pause {node.title}",
        )
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: pause.decision is not None, timeout=timeout)
        decision = pause.decision
        del self._pauses[node_id]
        now = workflow.now()
        failure: str | None = None
        if decision is None:
            on_timeout = config.on_timeout
            if on_timeout == "fail":
                failure = f"No decision within {timeout} s (on_timeout: fail)"
                state.fail(node_id, failure, now)
            else:
                action = PauseAction.APPROVE if on_timeout == "approve" else PauseAction.DECLINE
                decision = Decision(
                    action=action, user_id="timeout", comments=f"No decision within {timeout} s"
                )
        output: dict[str, Any] = {}
        if decision is not None:
            output = self._apply(state, node_id, passthrough, decision, config.continue_on_decline, now)
        if state.run_status() == RunStatus.RUNNING:
            workflow.upsert_search_attributes([sa.STATUS.value_set(RunStatus.RUNNING.value)])
        await _db_write(
            "record_decision",
            RecordDecisionInput(
                run_id=inp.run_id,
                seq=pause.seq,
                action=decision.action if decision else None,
                user_id=decision.user_id if decision else None,
                comments=decision.comments if decision else failure,
                inputs=decision.inputs if decision else None,
                decided_by=decision.decided_by if decision else None,
                resume_time=now,
                tasks=_unflushed(state, self._flushed),
                still_paused=bool(state.paused()),
            ),
            f"decision {node.title}",
        )
        pause.recorded = True
        if failure is not None:
            raise ApplicationError(failure, type="pause_timeout", non_retryable=True)
        return output

    @staticmethod
    def _apply(
        state: graph.RunState,
        node_id: str,
        passthrough: dict[str, Any],
        decision: Decision,
        continue_on_decline: bool,
        now: Any,
    ) -> dict[str, Any]:
        if decision.action == PauseAction.OVERRIDE:
            output = dict(decision.inputs)
        elif decision.action == PauseAction.APPROVE:
            output = {**passthrough, **decision.inputs}
        elif continue_on_decline:
            output = {**passthrough, **decision.inputs, "approved": False}
        else:
            reason = f"Declined by {decision.user_id}" + (
                f": {decision.comments}" if decision.comments else ""
            )
            state.decline(node_id, reason, now)
            return {}
        state.complete(node_id, output, now)
        return output

    async def _finalize(self, inp: RunInput, state: graph.RunState) -> RunResult:
        status = state.run_status()
        error = None
        if state.failed_node is not None:
            failed = state.records[state.failed_node]
            error = f"Node '{failed.node_id}' failed: {failed.error}"
        elif state.canceled:
            error = "Run canceled"
        elif state.declined is not None:
            error = state.records[state.declined].error
        result: RunResult = await _db_write(
            "finalize_run",
            FinalizeInput(
                run_id=inp.run_id,
                status=status,
                outputs=state.outputs(),
                tasks=state.task_list(),
                error=error,
                end_time=workflow.now(),
            ),
            "finalize run",
            RunResult,
        )
        workflow.upsert_search_attributes([sa.STATUS.value_set(result.status.value)])
        return result


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


async def _db_write(name: str, arg: Any, summary: str, result_type: type | None = None) -> Any:
    """A database write as a local activity: it runs inside the workflow task (no round trip) and
    retries with backoff for as long as the database is away."""
    return await workflow.execute_local_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        summary=summary,
    )


def _unflushed(state: graph.RunState, flushed: dict[str, TaskRecord]) -> list[TaskRecord]:
    """Task records changed since they were last handed to an activity for writing."""
    changed = [r for r in state.task_list() if flushed.get(r.node_id) != r]
    for r in changed:
        flushed[r.node_id] = r.model_copy()
    return changed


def _activity_error_text(err: ActivityError | ApplicationError) -> str:
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, CancelledError):
        return "Canceled"
    return str(cause or err)
