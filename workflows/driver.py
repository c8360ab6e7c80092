"""`GraphRunner`: schedules one run's graph inside workflow code (Temporal glue around `graph.RunState`).

It asks the catalogue (`workflows.nodes`) for each ready node's handler: PURE kinds are evaluated
inline (they are deterministic); the others run as tasks through the handler, which gets this
runner as its `RunScope` (run ids, writes, progress, pauses, loop bodies). The runner decides when
settled nodes are written. Used by `RunWorkflow` (one run) and `BatchChunkWorkflow` (one runner per
dataset row).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from run_status import TaskStatus
    from telemetry import in_workflow
    from workflows import graph, nodes
    from workflows.contracts import ProgressInput, RunActivitiesContract, RunInput, TaskRecord
    from workflows.definition import WorkflowDefinition, WorkflowNode
    from workflows.node_kinds.base import NodeKind, NodeOutput, Pause, db_write
    from workflows.node_kinds.python_func import PythonBatcher

ArgT = TypeVar("ArgT")
InFlight = dict[str, asyncio.Task[NodeOutput]]


class GraphRunner:
    """The state of one run's graph and its loop bodies, and the code that drives them."""

    def __init__(
        self, inp: RunInput, batcher: PythonBatcher | None = None, *, describe: bool = False
    ) -> None:
        self._inp = inp
        self._batcher = batcher
        self._describe = describe  # keep the execution's current details (a run's own execution)
        self.states: list[graph.RunState] = []
        self.pauses: dict[str, Pause] = {}  # open pauses by node id
        self.closing = False
        self._pause_seq = 0
        self._next_seq = 0
        self._flushed: dict[tuple[str, str], TaskRecord] = {}
        # Loop-body states whose records are all settled and written: never compared again, so a
        # long loop does not make every progress write slower.
        self._written: set[int] = set()

    # -- the scope handlers see (`node_kinds.base.RunScope`) -------------------------------------
    @property
    def inp(self) -> RunInput:
        return self._inp

    @property
    def batcher(self) -> PythonBatcher | None:
        return self._batcher

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

    async def write(self, write: Callable[[Any, ArgT], Awaitable[None]], arg: ArgT, summary: str) -> None:
        if self.inp.persist:
            await db_write(write, arg, summary)

    def open_pause(self, node_id: str) -> Pause:
        self._pause_seq += 1
        pause = self.pauses[node_id] = Pause(node_id, self._pause_seq)
        return pause

    def close_pause(self, node_id: str) -> None:
        del self.pauses[node_id]

    def plan(self, definition: WorkflowDefinition) -> graph.GraphPlan:
        return graph.GraphPlan.build(definition)

    def body_plan(self, state: graph.RunState, node: WorkflowNode) -> graph.GraphPlan:
        return graph.GraphPlan.build(graph.loop_body(state.plan.definition, node))

    def first_output_node(self, definition: WorkflowDefinition) -> WorkflowNode | None:
        return next((n for n in definition.nodes if nodes.kind_of(n.node_type).is_output), None)

    def new_state(self, plan: graph.GraphPlan, scope: str = "") -> graph.RunState:
        state = graph.RunState(plan, scope=scope, seq_base=self._next_seq)
        self._next_seq += len(plan.order)
        self.states.append(state)
        return state

    def node_plan(self, definition: WorkflowDefinition, node_id: str) -> graph.GraphPlan:
        return graph.GraphPlan.single(definition, node_id)

    async def run_node(self, state: graph.RunState, node_id: str, inputs: dict[str, Any]) -> None:
        node = state.plan.by_id[node_id]
        kind = nodes.kind_of(node.node_type)
        now = workflow.now()
        state.start(node_id, inputs, now)
        if kind.kind is NodeKind.PURE:
            _evaluate_inline(state, node, inputs, now)
            return
        in_flight: InFlight = {
            node_id: asyncio.create_task(_traced(node, kind.start(self, state, node_id, inputs)))
        }
        try:
            await workflow.wait(list(in_flight.values()))
        except (asyncio.CancelledError, CancelledError):
            await _cancel_all(in_flight)
            raise
        _settle_done(state, in_flight)

    # -- the run as a whole ----------------------------------------------------------------------
    @property
    def root(self) -> graph.RunState:
        return self.states[0]

    def task_list(self) -> list[TaskRecord]:
        return [r if not r.scope else _without_history(r) for state in self.states for r in state.task_list()]

    def cancel(self, reason: str) -> None:
        for state in self.states:
            state.cancel(reason, workflow.now())

    def settle_bodies(self, reason: str) -> None:
        """Loop-body nodes left unsettled when the run ends (a failure elsewhere) end CANCELED."""
        for state in self.states[1:]:
            if state.unsettled():
                state.cancel(reason, workflow.now())

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

    # -- scheduling ------------------------------------------------------------------------------
    async def drive(
        self,
        state: graph.RunState,
        payload: dict[str, Any],
        precomputed: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        in_flight: InFlight = {}
        try:
            await self._drive(state, payload, precomputed or {}, in_flight)
        except (asyncio.CancelledError, CancelledError):
            await _cancel_all(in_flight)
            raise

    async def _drive(
        self,
        state: graph.RunState,
        payload: dict[str, Any],
        precomputed: dict[str, dict[str, Any]],
        in_flight: InFlight,
    ) -> None:
        _enter(state, payload, precomputed)
        while True:
            flushed_by_node = self._start_ready(state, in_flight)
            if state.failed_node is not None:
                await _cancel_all(in_flight)
                return
            if not in_flight:
                if state.ready():
                    continue
                return
            # Nodes that settled while others still run (or wait on a person) are written now, so
            # the database never shows a finished node as running. A node whose activity writes
            # the progress itself (started in this pass) saves the common path that extra write.
            if not flushed_by_node:
                await self._flush_progress()
            if self._describe:
                self.describe()
            await workflow.wait(list(in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
            _settle_done(state, in_flight)

    def _start_ready(self, state: graph.RunState, in_flight: InFlight) -> bool:
        """Start the nodes ready now: PURE ones settle inline, the others become tasks. Stops at the
        first inline failure. Returns whether a started node writes the progress itself."""
        flushed_by_node = False
        for node_id in state.ready():
            start = state.start_or_skip(node_id)
            now = workflow.now()
            if start is None:
                state.skip(node_id, now)
                continue
            node = state.plan.by_id[node_id]
            kind = nodes.kind_of(node.node_type)
            state.start(node_id, start.inputs, now)
            if kind.kind is NodeKind.PURE:
                if not _evaluate_inline(state, node, start.inputs, now):
                    break
                continue
            flushed_by_node = flushed_by_node or kind.flushes_progress
            work = kind.start(self, state, node_id, start.inputs)
            in_flight[node_id] = asyncio.create_task(_traced(node, work))
        return flushed_by_node

    def describe(self) -> None:
        """The Temporal UI's current details: what the run waits for now."""
        running: list[tuple[str, str]] = []
        messages: dict[str, str | None] = {}
        # Loop-body states already settled and written are skipped, so long loops stay linear.
        for state in (s for i, s in enumerate(self.states) if i not in self._written):
            for r in state.records.values():
                node = state.plan.by_id[r.node_id]
                if r.status == TaskStatus.RUNNING:
                    running.append((r.node_id, node.node_type))
                elif r.status == TaskStatus.PAUSED:
                    messages[r.node_id] = node.config.get("message")
        pauses = [(p.node_id, messages.get(p.node_id)) for p in self.pauses.values() if p.decision is None]
        in_workflow.set_details(in_workflow.run_details(running, pauses, self.inp.triggered_by))

    async def _flush_progress(self) -> None:
        settled = self.unflushed()
        if settled:
            progress = ProgressInput(run_id=self.inp.run_id, attempt=self.inp.attempt, tasks=settled)
            await db_write(RunActivitiesContract.record_progress, progress, "progress")


def _enter(state: graph.RunState, payload: dict[str, Any], precomputed: dict[str, dict[str, Any]]) -> None:
    """Settle the given outputs and the InputNode (its output is the payload)."""
    plan = state.plan
    now = workflow.now()
    for node_id, output in precomputed.items():
        if node_id in plan.by_id:
            state.complete(node_id, dict(output), now)
    if state.records[plan.input_node_id].status not in graph.SETTLED:
        entry = plan.by_id[plan.input_node_id]
        in_workflow.node_span(entry.node_type, entry.id, entry.title, current=False)
        started = in_workflow.inline_clock()
        state.start(plan.input_node_id, {}, now)
        state.complete(plan.input_node_id, nodes.input_node_output(entry, payload), now)
        seconds = in_workflow.inline_clock() - started
        in_workflow.node_settled(entry.node_type, state.records[entry.id].status, seconds)


def _evaluate_inline(
    state: graph.RunState, node: WorkflowNode, inputs: dict[str, Any], now: datetime
) -> bool:
    """Settle a PURE node; False when it failed (and with it the run)."""
    in_workflow.node_span(node.node_type, node.id, node.title, current=False)
    started = in_workflow.inline_clock()
    try:
        out = nodes.evaluate_pure(node, inputs)
    except Exception as exc:
        state.fail(node.id, f"{type(exc).__name__}: {exc}", now)
        seconds = in_workflow.inline_clock() - started
        in_workflow.node_settled(node.node_type, state.records[node.id].status, seconds)
        return False
    if out is None:
        state.skip(node.id, now)
    else:
        state.complete(node.id, out, now)
    seconds = in_workflow.inline_clock() - started
    in_workflow.node_settled(node.node_type, state.records[node.id].status, seconds)
    return True


async def _traced(node: WorkflowNode, work: Coroutine[Any, Any, NodeOutput]) -> NodeOutput:
    """Run a node's task under its own span (its activity, child run or pause nest under it)."""
    in_workflow.node_span(node.node_type, node.id, node.title, current=True)
    return await work


def _settle_done(state: graph.RunState, in_flight: InFlight) -> None:
    for node_id, task in list(in_flight.items()):
        if not task.done():
            continue
        del in_flight[node_id]
        try:
            output = task.result()
            if state.records[node_id].status not in graph.SETTLED:  # pausing kinds settle themselves
                state.complete(node_id, output, workflow.now())
        except (ActivityError, ApplicationError, ChildWorkflowError) as err:
            state.fail(node_id, _error_text(err), workflow.now())
        except Exception as err:  # a node's own fault fails the node, never the workflow task
            state.fail(node_id, f"{type(err).__name__}: {err}", workflow.now())
        record = state.records[node_id]
        if record.start_time is not None and record.end_time is not None:
            seconds = (record.end_time - record.start_time).total_seconds()
            in_workflow.node_settled(state.plan.by_id[node_id].node_type, record.status, seconds)


async def _cancel_all(in_flight: InFlight) -> None:
    for task in in_flight.values():
        task.cancel()
    await asyncio.gather(*in_flight.values(), return_exceptions=True)


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


def _error_text(err: ActivityError | ApplicationError | ChildWorkflowError) -> str:
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError) else err
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, CancelledError):
        return "Canceled"
    return str(cause or err)
