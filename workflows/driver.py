"""`GraphRunner`: drives one run's graph inside workflow code (Temporal glue around `graph.RunState`).

Pure nodes are evaluated inline (they are deterministic). PythonFuncNode runs the activity
`run_python_node`, called by name: first as a local activity bounded by the fast-path limit, then,
if it needs longer, as a regular heartbeating activity. HumanInterventionNode waits for a decision,
SubworkflowNode runs a child `RunWorkflow`, ForLoopNode drives its body once per iteration.
Used by `RunWorkflow` (one run) and `BatchChunkWorkflow` (one runner per dataset row).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from errors import InvalidInput
    from run_status import PauseAction, RunStatus
    from workflows import graph, nodes
    from workflows import search_attributes as sa
    from workflows.contracts import (
        CreateChildRunInput,
        Decision,
        PauseRecord,
        ProgressInput,
        PythonBatchInput,
        PythonItem,
        PythonNodeInput,
        RecordDecisionInput,
        RecordPauseInput,
        RunActivitiesContract,
        RunInput,
        RunWorkflowContract,
        TaskRecord,
    )
    from workflows.node_configs import (
        ForLoopNodeConfig,
        HumanInterventionNodeConfig,
        SubworkflowNodeConfig,
    )

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
_LIMIT_KEYS = ("wall_seconds", "cpu_seconds", "memory_mb", "output_bytes")


@dataclass
class Pause:
    node_id: str
    seq: int
    decision: Decision | None = None
    recorded: bool = False


class PythonBatcher:
    """Runs one Python node for many rows of a batch chunk in a single sandboxed call.

    Rows that reach the same node while a call is being prepared or is running are grouped (the
    workflow's event loop is deterministic, so the groups are the same on replay). It saves a
    local activity and a sandbox spawn per row: the same owner's same code, one call per row,
    in one process. Any failure of the call as a whole sends each row back to run on its own.
    """

    def __init__(self, max_items: int) -> None:
        self._max = max_items
        self._pending: dict[str, list[tuple[dict[str, Any], asyncio.Future[PythonItem | None]]]] = {}
        self._draining: dict[str, asyncio.Task[None]] = {}

    async def run(self, title: str, arg: PythonNodeInput, wall: float) -> dict[str, Any] | None:
        """The node's output for this row, or None: run the row on its own.

        Raises:
            ApplicationError: the user's code failed for this row (non-retryable, typed).
        """
        fut: asyncio.Future[PythonItem | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(arg.node_id, []).append((arg.inputs, fut))
        if arg.node_id not in self._draining:
            self._draining[arg.node_id] = asyncio.create_task(self._drain(title, arg, wall))
        item = await fut
        if item is None:
            return None
        if item.outputs is not None:
            return item.outputs
        raise ApplicationError(item.error or "Python node failed", type=item.kind, non_retryable=True)

    async def _drain(self, title: str, arg: PythonNodeInput, wall: float) -> None:
        queue = self._pending[arg.node_id]
        while queue:
            group = queue[: self._max]
            del queue[: self._max]
            items: list[PythonItem | None] = [None] * len(group)
            try:
                result = await workflow.execute_local_activity_method(
                    RunActivitiesContract.run_python_batch,
                    PythonBatchInput(
                        code=arg.code,
                        items=[inputs for inputs, _ in group],
                        output_schema=arg.output_schema,
                        limits={**arg.limits, "wall_seconds": wall},
                    ),
                    start_to_close_timeout=timedelta(seconds=wall + 10),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    summary=f"{title} x{len(group)}",
                )
                if len(result.items) == len(group):
                    items = list(result.items)
            except (ActivityError, ApplicationError):
                pass  # each row runs on its own
            for (_, fut), item in zip(group, items, strict=True):
                if not fut.done():  # a canceled row no longer waits
                    fut.set_result(item)
        del self._draining[arg.node_id]


class GraphRunner:
    """The state of one run's graph and its loop bodies, and the code that drives them."""

    def __init__(self, inp: RunInput, batcher: PythonBatcher | None = None) -> None:
        self.inp = inp
        self.batcher = batcher
        self.states: list[graph.RunState] = []
        self.pauses: dict[str, Pause] = {}  # open pauses by node id
        self.closing = False
        self._pause_seq = 0
        self._next_seq = 0
        self._flushed: dict[tuple[str, str], TaskRecord] = {}
        # Loop-body states whose records are all settled and written: never compared again, so a
        # long loop does not make every progress write slower.
        self._written: set[int] = set()

    # -- state -----------------------------------------------------------------------------------
    def new_state(self, plan: graph.GraphPlan, scope: str = "") -> graph.RunState:
        state = graph.RunState(plan, scope=scope, seq_base=self._next_seq)
        self._next_seq += len(plan.order)
        self.states.append(state)
        return state

    @property
    def root(self) -> graph.RunState:
        return self.states[0]

    def task_list(self) -> list[TaskRecord]:
        return [r if not r.scope else _without_history(r) for state in self.states for r in state.task_list()]

    def unflushed(self) -> list[TaskRecord]:
        """Task records changed since they were last handed to an activity for writing."""
        if not self.inp.persist:
            return []
        changed = []
        for i, state in enumerate(self.states):
            if i in self._written:
                continue
            records = state.task_list()
            changed += [r for r in records if self._flushed.get((r.scope, r.node_id)) != r]
            if i > 0 and all(r.status in graph.SETTLED for r in records):
                self._written.add(i)
        for r in changed:
            self._flushed[(r.scope, r.node_id)] = r.model_copy()
        return changed

    def cancel(self, reason: str) -> None:
        for state in self.states:
            state.cancel(reason, workflow.now())

    def settle_bodies(self, reason: str) -> None:
        """Loop-body nodes left unsettled when the run ends (a failure elsewhere) end CANCELED."""
        for state in self.states[1:]:
            if state.unsettled():
                state.cancel(reason, workflow.now())

    async def write(self, write: Callable[[Any, ArgT], Awaitable[None]], arg: ArgT, summary: str) -> None:
        if self.inp.persist:
            await db_write(write, arg, summary)

    # -- driving ---------------------------------------------------------------------------------
    async def run(self) -> graph.RunState:
        """Drive the run's own graph (with its precomputed outputs) until it settles or pauses end."""
        include = None
        if self.inp.target_node_id is not None:
            include = graph.partial_run_nodes(
                self.inp.definition, self.inp.target_node_id, set(self.inp.precomputed)
            )
        state = self.new_state(graph.GraphPlan.build(self.inp.definition, include))
        await self.drive(state, self.inp.input_payload, self.inp.precomputed)
        return state

    async def drive(
        self,
        state: graph.RunState,
        payload: dict[str, Any],
        precomputed: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        in_flight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        try:
            await self._drive(state, payload, precomputed or {}, in_flight)
        except (asyncio.CancelledError, CancelledError):
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
            raise

    async def _drive(
        self,
        state: graph.RunState,
        payload: dict[str, Any],
        precomputed: dict[str, dict[str, Any]],
        in_flight: dict[str, asyncio.Task[dict[str, Any]]],
    ) -> None:
        plan = state.plan
        now = workflow.now()
        for node_id, output in precomputed.items():
            if node_id in plan.by_id:
                state.complete(node_id, dict(output), now)
        if state.records[plan.input_node_id].status not in graph.SETTLED:
            state.start(plan.input_node_id, {}, now)
            state.complete(
                plan.input_node_id, nodes.input_node_output(plan.by_id[plan.input_node_id], payload), now
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
                        self._python_node(state, node_id, decision.inputs)
                    )
                    continue
                if node.node_type == "HumanInterventionNode":
                    # Paused here, before any progress snapshot is taken, so every write agrees.
                    self._pause_seq += 1
                    self.pauses[node_id] = Pause(node_id, self._pause_seq)
                    state.pause(node_id, dict(decision.inputs), now)
                    in_flight[node_id] = asyncio.create_task(
                        self._human_node(state, node_id, decision.inputs)
                    )
                    continue
                if node.node_type == "SubworkflowNode":
                    in_flight[node_id] = asyncio.create_task(
                        self._subworkflow_node(state, node_id, decision.inputs)
                    )
                    continue
                if node.node_type == "ForLoopNode":
                    in_flight[node_id] = asyncio.create_task(self._loop_node(state, node_id, decision.inputs))
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
                settled = self.unflushed()
                if settled:
                    progress = ProgressInput(run_id=self.inp.run_id, attempt=self.inp.attempt, tasks=settled)
                    await db_write(RunActivitiesContract.record_progress, progress, "progress")
            await workflow.wait(list(in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
            for node_id, task in list(in_flight.items()):
                if not task.done():
                    continue
                del in_flight[node_id]
                try:
                    output = task.result()
                    if state.records[node_id].status not in graph.SETTLED:  # human nodes settle themselves
                        state.complete(node_id, output, workflow.now())
                except (ActivityError, ApplicationError, ChildWorkflowError) as err:
                    state.fail(node_id, _error_text(err), workflow.now())
                except Exception as err:  # a node's own fault fails the node, never the workflow task
                    state.fail(node_id, f"{type(err).__name__}: {err}", workflow.now())

    # -- node kinds ------------------------------------------------------------------------------
    async def _python_node(
        self, state: graph.RunState, node_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        node = state.plan.by_id[node_id]
        changed = self.unflushed()
        policy = self.inp.policy
        arg = PythonNodeInput(
            run_id=self.inp.run_id,
            attempt=self.inp.attempt,
            node_id=node_id,
            code=str(node.config.get("code", "")),
            inputs=inputs,
            output_schema=node.config.get("output_schema") or None,
            limits={k: float(node.config[k]) for k in _LIMIT_KEYS if node.config.get(k) is not None},
            record=self.inp.persist,
            tasks=changed,
        )
        wall = float(arg.limits.get("wall_seconds", policy.wall_seconds))
        fast = min(policy.fast_path_seconds, wall)
        if fast > 0 and self.batcher is not None:
            batched = await self.batcher.run(node.title, arg, fast)
            if batched is not None:
                return batched
        if fast > 0:
            # Fast path: a local activity runs inside this workflow task, saving two round trips
            # through the server. User code has no network and no lasting files, so running it
            # again on the slow path after the fast-path limit is harmless.
            try:
                return await workflow.execute_local_activity_method(
                    RunActivitiesContract.run_python_node,
                    arg.model_copy(update={"limits": {**arg.limits, "wall_seconds": fast}}),
                    start_to_close_timeout=timedelta(seconds=fast + 10),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    summary=node.title,
                )
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
        if self.inp.persist:
            workflow.upsert_search_attributes([sa.STATUS.value_set(RunStatus.RUNNING.value)])
        return await workflow.execute_activity_method(
            RunActivitiesContract.run_python_node,
            arg.model_copy(update={"tasks": []}) if fast > 0 else arg,
            start_to_close_timeout=timedelta(seconds=policy.start_to_close_seconds),
            heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                maximum_attempts=policy.max_attempts, maximum_interval=timedelta(seconds=10)
            ),
            summary=node.title,
        )

    async def _human_node(
        self, state: graph.RunState, node_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        """Pause until a person decides (or the node's timeout acts for them), then settle the node.

        Raises:
            ApplicationError: the pause timed out and the node's `on_timeout` is "fail".
        """
        node = state.plan.by_id[node_id]
        # The typed config: the stored one may hold values pydantic coerced ("5", "false").
        config = nodes.parse_config(node)
        assert isinstance(config, HumanInterventionNodeConfig)
        pause = self.pauses[node_id]
        passthrough = dict(inputs)
        now = workflow.now()
        timeout = config.timeout_seconds
        workflow.upsert_search_attributes([sa.STATUS.value_set(RunStatus.PAUSED.value)])
        await self.write(
            RunActivitiesContract.record_pause,
            RecordPauseInput(
                run_id=self.inp.run_id,
                attempt=self.inp.attempt,
                pause=PauseRecord(
                    node_id=node_id,
                    seq=pause.seq,
                    message=config.message,
                    input_data=passthrough,
                    pause_time=now,
                    timeout_at=now + timedelta(seconds=timeout) if timeout else None,
                ),
                tasks=self.unflushed(),
            ),
            f"pause {node.title}",
        )
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: pause.decision is not None, timeout=timeout)
        decision = pause.decision
        del self.pauses[node_id]
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
            output = _apply(state, node_id, passthrough, decision, config.continue_on_decline, now)
        if state.run_status() == RunStatus.RUNNING:
            workflow.upsert_search_attributes([sa.STATUS.value_set(RunStatus.RUNNING.value)])
        await self.write(
            RunActivitiesContract.record_decision,
            RecordDecisionInput(
                run_id=self.inp.run_id,
                attempt=self.inp.attempt,
                seq=pause.seq,
                action=decision.action if decision else None,
                user_id=decision.user_id if decision else None,
                comments=decision.comments if decision else failure,
                inputs=decision.inputs if decision else None,
                decided_by=decision.decided_by if decision else None,
                resume_time=now,
                tasks=self.unflushed(),
                still_paused=bool(state.paused()),
            ),
            f"decision {node.title}",
        )
        pause.recorded = True
        if failure is not None:
            raise ApplicationError(failure, type="pause_timeout", non_retryable=True)
        return output

    async def _subworkflow_node(
        self, state: graph.RunState, node_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        """Run the configured workflow as a child run; its OutputNode's output is this node's.

        Raises:
            ApplicationError: the workflow is unknown to this run, has no OutputNode, or the mapped
                inputs do not fit its InputNode.
        """
        node = state.plan.by_id[node_id]
        config = nodes.parse_config(node)
        assert isinstance(config, SubworkflowNodeConfig)
        snap = self.inp.subworkflows.get(config.workflow_id)
        if snap is None:
            raise ApplicationError(f"Workflow '{config.workflow_id}' was not found", non_retryable=True)
        child_plan = graph.GraphPlan.build(snap.definition)
        output_node = next((n for n in snap.definition.nodes if n.node_type == "OutputNode"), None)
        if output_node is None:
            raise ApplicationError(f"Workflow '{snap.name}' has no OutputNode", non_retryable=True)
        payload = (
            nodes.map_inputs(node, inputs, config.input_map)
            if config.input_map
            else nodes.merged_fields(inputs)
        )
        try:
            payload = nodes.validate_run_inputs(child_plan.by_id[child_plan.input_node_id], payload)
        except InvalidInput as err:
            raise ApplicationError(
                f"Inputs for workflow '{snap.name}': {err.detail}", non_retryable=True
            ) from None
        child_id = str(workflow.uuid4())
        state.records[node_id].subworkflow_output = {"run_id": child_id}
        if self.inp.persist:
            await db_write(
                RunActivitiesContract.create_child_run,
                CreateChildRunInput(
                    run_id=child_id,
                    parent_run_id=self.inp.run_id,
                    tenant_id=self.inp.tenant_id,
                    workflow_id=snap.workflow_id,
                    version_id=snap.version_id,
                    initial_inputs={child_plan.input_node_id: payload},
                    triggered_by=self.inp.triggered_by,
                    start_time=workflow.now(),
                ),
                f"child run {node.title}",
            )
        result = await workflow.execute_child_workflow(
            RunWorkflowContract.run,
            RunInput(
                run_id=child_id,
                tenant_id=self.inp.tenant_id,
                workflow_id=snap.workflow_id,
                workflow_name=snap.name,
                definition=snap.definition,
                input_payload=payload,
                policy=self.inp.policy,
                persist=self.inp.persist,
                subworkflows=self.inp.subworkflows,
                triggered_by=self.inp.triggered_by,
            ),
            id=sa.temporal_workflow_id(child_id),
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.RUN_ID, child_id),
                    SearchAttributePair(sa.WORKFLOW_ID, snap.workflow_id),
                    SearchAttributePair(sa.STATUS, RunStatus.PENDING.value),
                ]
            ),
            memo={"workflow_name": snap.name, "workflow_id": snap.workflow_id, "run_type": "subworkflow"},
        )
        if result.status != RunStatus.COMPLETED:
            raise ApplicationError(
                f"Workflow '{snap.name}' ended {result.status.value}: {result.error}", non_retryable=True
            )
        output = result.outputs.get(output_node.id)
        if not isinstance(output, dict):
            raise ApplicationError(f"Workflow '{snap.name}' produced no output", non_retryable=True)
        return output

    async def _loop_node(self, state: graph.RunState, node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Drive the loop's body `num_iterations` times, PySpur's way: each iteration gets the
        running input plus `loop_history`, and the body's OutputNode fields are merged back in.

        Raises:
            ApplicationError: a body node failed, or the body's OutputNode produced nothing.
        """
        node = state.plan.by_id[node_id]
        config = nodes.parse_config(node)
        assert isinstance(config, ForLoopNodeConfig)
        body = graph.loop_body(state.plan.definition, node)
        plan = graph.GraphPlan.build(body)
        output_id = next(nid for nid in plan.order if plan.by_id[nid].node_type == "OutputNode")
        current = nodes.map_inputs(node, inputs, config.input_map) if config.input_map else dict(inputs)
        history: dict[str, list[dict[str, Any]]] = {}
        record = state.records[node_id]
        record.subworkflow = body.model_dump(mode="json")
        prefix = f"{state.scope}/" if state.scope else ""
        final: dict[str, Any] = {}
        for i in range(1, config.num_iterations + 1):
            body_state = self.new_state(plan, f"{prefix}{node_id}#{i}")
            await self.drive(body_state, {**current, "loop_history": _copy_history(history)})
            if body_state.failed_node is not None:
                failed = body_state.records[body_state.failed_node]
                raise ApplicationError(
                    f"Iteration {i}: node '{failed.node_id}' failed: {failed.error}", non_retryable=True
                )
            outputs = body_state.outputs()
            for nid, out in outputs.items():
                history.setdefault(nid, []).append({k: v for k, v in out.items() if k != "loop_history"})
            if output_id not in outputs:
                raise ApplicationError(
                    f"Iteration {i}: the body's OutputNode '{output_id}' produced no output",
                    non_retryable=True,
                )
            final = outputs[output_id]
            current.update(final)
            record.subworkflow_output = _copy_history(history)
        return {k: current[k] for k in final}


def _without_history(record: TaskRecord) -> TaskRecord:
    """A loop-body task as stored: the loop's history is kept once, on the loop's own task, not in
    every body task of every iteration (which would grow with the square of the iterations)."""

    def strip(value: Any) -> Any:
        return {k: v for k, v in value.items() if k != "loop_history"} if isinstance(value, dict) else value

    outputs = strip(record.outputs)
    inputs = {k: strip(v) for k, v in record.inputs.items()} if record.inputs else record.inputs
    if outputs is record.outputs and inputs == record.inputs:
        return record
    return record.model_copy(update={"outputs": outputs, "inputs": inputs})


def _copy_history(history: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {k: list(v) for k, v in history.items()}


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
        reason = f"Declined by {decision.user_id}" + (f": {decision.comments}" if decision.comments else "")
        state.decline(node_id, reason, now)
        return {}
    state.complete(node_id, output, now)
    return output


async def db_write(write: Callable[[Any, ArgT], Awaitable[ResultT]], arg: ArgT, summary: str) -> ResultT:
    """A database write as a local activity: it runs inside the workflow task (no round trip) and
    retries with backoff for as long as the database is away."""
    return await workflow.execute_local_activity_method(
        write,
        arg,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        summary=summary,
    )


def _error_text(err: ActivityError | ApplicationError | ChildWorkflowError) -> str:
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError) else err
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, CancelledError):
        return "Canceled"
    return str(cause or err)
