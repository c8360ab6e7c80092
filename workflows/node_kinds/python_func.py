"""PythonFuncNode: the user's code in a sandbox, as the activity `run_python_node`.

First as a local activity bounded by the fast-path limit, then, if it needs longer, as a regular
heartbeating activity. Rows of a batch chunk that reach the same node are grouped into one call.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from run_status import RunStatus
from workflows.contracts import (
    NodePolicy,
    PythonBatchInput,
    PythonItem,
    PythonNodeInput,
    RunActivitiesContract,
)
from workflows.definition import WorkflowNode
from workflows.node_configs import PythonFuncNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, RunScope, object_schema
from workflows.search_attributes import publish_status

if TYPE_CHECKING:
    from workflows.graph import RunState

_LIMIT_KEYS = ("wall_seconds", "cpu_seconds", "memory_mb", "output_bytes")


class PythonFuncHandler(NodeHandler[PythonFuncNodeConfig]):
    node_type = "PythonFuncNode"
    display_name = "Python Function"
    group = "Code Execution"
    kind = NodeKind.ACTIVITY
    config_model = PythonFuncNodeConfig
    acronym = "PFN"
    color = "#6610F2"
    input_schema = object_schema("PythonFuncNodeInput")
    output_schema = object_schema("PythonFuncNodeOutput")
    flushes_progress = True

    async def run(self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]) -> NodeOutput:
        node = state.plan.by_id[node_id]
        arg = _activity_input(run, node, self.config(node), inputs)
        policy = run.inp.policy
        wall = float(arg.limits.get("wall_seconds", policy.wall_seconds))
        fast = min(policy.fast_path_seconds, wall)
        if fast > 0 and run.batcher is not None:
            batched = await run.batcher.run(node.title, arg, fast)
            if batched is not None:
                return batched
        if fast > 0:
            quick = await _fast_path(node.title, arg, fast, wall)
            if quick is not None:
                return quick
        # Only now is the run worth marking RUNNING for operators: a fast-path run is already done.
        if run.inp.persist:
            publish_status(RunStatus.RUNNING)
        return await _slow_path(node.title, arg.model_copy(update={"tasks": []}) if fast > 0 else arg, policy)


def _activity_input(
    run: RunScope, node: WorkflowNode, config: PythonFuncNodeConfig, inputs: dict[str, Any]
) -> PythonNodeInput:
    # Keys the stored config leaves out stay out (the model's PySpur defaults would add an output
    # schema the node never declared).
    given = config.model_fields_set
    return PythonNodeInput(
        run_id=run.inp.run_id,
        attempt=run.inp.attempt,
        node_id=node.id,
        code=config.code,
        inputs=inputs,
        output_schema=(config.output_schema if "output_schema" in given else None) or None,
        limits={k: float(getattr(config, k)) for k in _LIMIT_KEYS if getattr(config, k) is not None},
        record=run.inp.persist,
        tasks=run.unflushed(),
    )


async def _fast_path(title: str, arg: PythonNodeInput, fast: float, wall: float) -> NodeOutput | None:
    """The output from a local activity, which runs inside this workflow task (saving two round
    trips through the server); None when the node must run on the slow path.

    User code has no network and no lasting files, so running it again on the slow path after the
    fast-path limit is harmless.

    Raises:
        ApplicationError: the code failed in a way that running it again would not change.
    """
    try:
        return await workflow.execute_local_activity_method(
            RunActivitiesContract.run_python_node,
            arg.model_copy(update={"limits": {**arg.limits, "wall_seconds": fast}}),
            start_to_close_timeout=timedelta(seconds=fast + 10),
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=title,
        )
    except (ActivityError, ApplicationError) as err:
        # A failed local activity surfaces as its ApplicationError itself, not wrapped.
        cause = err.cause if isinstance(err, ActivityError) else err
        timed_out = isinstance(cause, ApplicationError) and cause.type == "timeout"
        if isinstance(cause, ApplicationError) and cause.non_retryable and not (timed_out and wall > fast):
            raise
    return None


async def _slow_path(title: str, arg: PythonNodeInput, policy: NodePolicy) -> NodeOutput:
    """A regular activity that heartbeats, so cancellation and worker loss reach it."""
    return await workflow.execute_activity_method(
        RunActivitiesContract.run_python_node,
        arg,
        start_to_close_timeout=timedelta(seconds=policy.start_to_close_seconds),
        heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_seconds),
        retry_policy=RetryPolicy(
            maximum_attempts=policy.max_attempts, maximum_interval=timedelta(seconds=10)
        ),
        summary=title,
    )


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

    async def run(self, title: str, arg: PythonNodeInput, wall: float) -> NodeOutput | None:
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
