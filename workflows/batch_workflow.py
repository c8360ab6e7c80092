"""Batch runs: a parent over a dataset, chunks of rows in child workflows, each row a run of the graph.

`BatchWorkflow` (the parent run's execution) starts one `BatchChunkWorkflow` at a time for up to
`chunk_rows` rows and continues-as-new every few chunks, so no history grows with the dataset.
A chunk drives up to `mini_batch_size` rows at once, each with its own `GraphRunner` (Python nodes
as local activities, pure nodes inline), and records finished rows in bulk: child runs, tasks,
output lines and the parent's counters, idempotently, so a replayed chunk records each row once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from errors import InvalidInput
    from run_status import RunStatus
    from telemetry import in_workflow
    from workflows import graph, nodes
    from workflows import search_attributes as sa
    from workflows.contracts import (
        BatchChunkInput,
        BatchInput,
        BatchRow,
        ChunkResult,
        FinalizeBatchInput,
        LoadRowsInput,
        ProgressInput,
        RecordRowsInput,
        RunActivitiesContract,
        RunInput,
        RunResult,
    )
    from workflows.driver import GraphRunner
    from workflows.node_kinds.base import db_write
    from workflows.node_kinds.python_func import PythonBatcher

_PAGE_ROWS = 100  # rows per load, at most (the loader also stops at a byte budget)
_FLUSH_ROWS = 100  # finished rows per bulk write, at most
_FLUSH_SECONDS = 1.0  # and at least this often while rows finish, so the parent's progress is honest
_CHUNKS_PER_EXECUTION = 4
# A chunk stops taking rows before its history nears Temporal's warning limits (10 MB, 10,240 events).
_HISTORY_EVENTS = 8_000
_HISTORY_BYTES = 6 * 1024 * 1024


def row_run_id(parent_run_id: str, idx: int) -> str:
    """A row's child run id, the same on every replay and retry."""
    return str(uuid.uuid5(uuid.UUID(parent_run_id), f"row-{idx}"))


def row_payload(input_node: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The InputNode's payload for one dataset row: its declared fields (all columns if it declares
    none), text cells converted to the declared number or boolean type.

    Raises:
        InvalidInput: the row does not fit the InputNode.
    """
    declared = nodes.declared_input_fields(input_node)
    if not declared:
        return dict(data)
    payload = {}
    for field in declared:
        if field.name not in data:
            continue
        value = data[field.name]
        if value == "" and not field.required and field.types and "string" not in field.types:
            continue  # an empty CSV cell leaves an optional number or boolean out
        payload[field.name] = _coerce(value, field.types)
    return nodes.validate_run_inputs(input_node, payload)


def _coerce(value: Any, types: tuple[str, ...]) -> Any:
    if not isinstance(value, str) or not types or "string" in types:
        return value
    text = value.strip()
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "boolean" in types and text.lower() in ("true", "false", "1", "0", "yes", "no"):
        return text.lower() in ("true", "1", "yes")
    if "null" in types and text == "":
        return None
    return value


@workflow.defn(name="BatchChunkWorkflow")
class BatchChunkWorkflow:
    @workflow.run
    async def run(self, inp: BatchChunkInput) -> ChunkResult:
        batch = inp.batch
        self._batcher = PythonBatcher(max_items=batch.mini_batch_size)
        plan = graph.GraphPlan.build(batch.definition)
        input_node = plan.by_id[plan.input_node_id]
        queued: deque[tuple[int, dict[str, Any]]] = deque()
        running: dict[int, asyncio.Task[BatchRow]] = {}
        finished: list[BatchRow] = []
        loaded = inp.start
        stop_at = inp.end
        flushed_at = workflow.time()
        self._counts = [0, 0]  # rows recorded: done, failed
        try:
            while True:
                if not queued and loaded < stop_at:
                    page = await workflow.execute_local_activity_method(
                        RunActivitiesContract.load_dataset_rows,
                        LoadRowsInput(
                            dataset_id=batch.dataset_id, start=loaded, limit=min(_PAGE_ROWS, stop_at - loaded)
                        ),
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
                        summary="load rows",
                    )
                    if (
                        not page
                    ):  # the dataset is shorter than counted: the missing rows are reported by the parent
                        stop_at = loaded
                    queued.extend((loaded + i, data) for i, data in enumerate(page))
                    loaded += len(page)
                while queued and len(running) < batch.mini_batch_size:
                    idx, data = queued.popleft()
                    running[idx] = asyncio.create_task(self._row(batch, input_node, idx, data))
                if not running:
                    break
                await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
                for idx, task in list(running.items()):
                    if task.done():
                        del running[idx]
                        finished.append(task.result())
                if len(finished) >= _FLUSH_ROWS or (
                    finished and workflow.time() - flushed_at >= _FLUSH_SECONDS
                ):
                    await self._flush(batch, finished)
                    flushed_at = workflow.time()
                if _history_full() and stop_at > loaded - len(queued):
                    # Rows not started yet are left to the next chunk.
                    stop_at = loaded - len(queued)
                    queued.clear()
                    loaded = stop_at
        except (asyncio.CancelledError, CancelledError):
            for task in running.values():
                task.cancel()
            rows = await asyncio.gather(*running.values(), return_exceptions=True)
            finished.extend(r for r in rows if isinstance(r, BatchRow))
            await self._flush(batch, finished)
            raise
        await self._flush(batch, finished)
        return ChunkResult(next_row=stop_at, rows_done=self._counts[0], rows_failed=self._counts[1])

    async def _row(self, batch: BatchInput, input_node: Any, idx: int, data: dict[str, Any]) -> BatchRow:
        run_id = row_run_id(batch.run_id, idx)
        start = workflow.now()
        try:
            payload = row_payload(input_node, data)
        except InvalidInput as err:
            return BatchRow(
                idx=idx,
                run_id=run_id,
                status=RunStatus.FAILED,
                initial_inputs={input_node.id: data},
                outputs={},
                error=f"Row {idx}: {err.detail}",
                start_time=start,
                end_time=workflow.now(),
            )
        runner = GraphRunner(
            RunInput(
                run_id=run_id,
                tenant_id=batch.tenant_id,
                workflow_id=batch.workflow_id,
                workflow_name=batch.workflow_name,
                definition=batch.definition,
                input_payload=payload,
                policy=batch.policy,
                persist=False,
                subworkflows=batch.subworkflows,
                triggered_by=batch.triggered_by,
            ),
            self._batcher,
        )
        error: str | None = None
        status: RunStatus | None = None
        try:
            state = await runner.run()
        except (asyncio.CancelledError, CancelledError):
            runner.cancel("Batch canceled")
            state = runner.root
        except Exception as err:  # one row's fault is that row's failure, never the chunk's
            error, status = f"{type(err).__name__}: {err}", RunStatus.FAILED
            if not runner.states:
                return BatchRow(
                    idx=idx,
                    run_id=run_id,
                    status=status,
                    initial_inputs={input_node.id: payload},
                    outputs={},
                    error=error,
                    start_time=start,
                    end_time=workflow.now(),
                )
            state = runner.root
            runner.cancel(error)
        if status is None:
            status = state.run_status()
            if state.failed_node is not None:
                failed = state.records[state.failed_node]
                error = f"Node '{failed.node_id}' failed: {failed.error}"
            elif state.canceled:
                error = "Batch canceled"
        runner.settle_bodies(error or "Run ended")
        return BatchRow(
            idx=idx,
            run_id=run_id,
            status=status,
            initial_inputs={input_node.id: payload},
            outputs=state.outputs(),
            error=error,
            start_time=start,
            end_time=workflow.now(),
            tasks=runner.task_list(),
        )

    async def _flush(self, batch: BatchInput, finished: list[BatchRow]) -> None:
        if not finished:
            return
        rows = sorted(finished, key=lambda r: r.idx)
        await db_write(
            RunActivitiesContract.record_batch_rows,
            RecordRowsInput(
                parent_run_id=batch.run_id,
                tenant_id=batch.tenant_id,
                workflow_id=batch.workflow_id,
                version_id=batch.version_id,
                triggered_by=batch.triggered_by,
                output_file_id=batch.output_file_id,
                rows=rows,
            ),
            f"record rows {rows[0].idx}..{rows[-1].idx}",
        )
        # Cleared only once written: a cancel that interrupts the write leaves the rows to the
        # cancel path's flush (writes are idempotent, so writing twice is harmless).
        failed = sum(1 for r in rows if r.status != RunStatus.COMPLETED)
        self._counts[0] += len(rows) - failed
        self._counts[1] += failed
        in_workflow.set_details(f"**Rows recorded:** {self._counts[0]} done, {self._counts[1]} failed")
        finished.clear()


def _history_full() -> bool:
    info = workflow.info()
    return (
        info.is_continue_as_new_suggested()
        or info.get_current_history_length() > _HISTORY_EVENTS
        or info.get_current_history_size() > _HISTORY_BYTES
    )


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    @workflow.run
    async def run(self, inp: BatchInput) -> RunResult:
        if inp.next_row == 0:
            workflow.upsert_search_attributes([sa.STATUS.value_set(RunStatus.RUNNING.value)])
            await db_write(
                RunActivitiesContract.record_progress,
                ProgressInput(run_id=inp.run_id, tasks=[]),
                "batch started",
            )
        try:
            chunks = 0
            while inp.next_row < inp.row_count:
                if chunks >= _CHUNKS_PER_EXECUTION or workflow.info().is_continue_as_new_suggested():
                    workflow.continue_as_new(inp)
                end = min(inp.next_row + inp.chunk_rows, inp.row_count)
                in_workflow.set_details(_batch_details(inp, end))
                done = await workflow.execute_child_workflow(
                    BatchChunkWorkflow.run,
                    BatchChunkInput(batch=inp, start=inp.next_row, end=end),
                    id=f"{sa.temporal_workflow_id(inp.run_id)}/rows-{inp.next_row}",
                    memo={"workflow_name": inp.workflow_name, "rows": f"{inp.next_row}..{end - 1}"},
                )
                chunks += 1
                if done.next_row <= inp.next_row:  # the dataset ended early; the parent ends FAILED
                    break
                inp.next_row = done.next_row
                inp.rows_done += done.rows_done
                inp.rows_failed += done.rows_failed
        except (asyncio.CancelledError, CancelledError, ChildWorkflowError) as err:
            # A cancel usually arrives while a chunk runs, and then surfaces as the chunk's
            # ChildWorkflowError (caused by its cancellation) once the chunk has recorded its rows.
            # A chunk that failed otherwise leaves rows undone: the counters make the parent FAILED.
            canceled = is_cancelled_exception(err)
            result = await self._finalize(inp, canceled=canceled)
            if canceled and result.status == RunStatus.CANCELED:
                raise
        else:
            result = await self._finalize(inp, canceled=False)
        if result.status == RunStatus.FAILED:
            raise ApplicationError(
                result.error or "Batch failed", result.model_dump(mode="json"), non_retryable=True
            )
        return result

    async def _finalize(self, inp: BatchInput, *, canceled: bool) -> RunResult:
        result = await db_write(
            RunActivitiesContract.finalize_batch,
            FinalizeBatchInput(run_id=inp.run_id, canceled=canceled, end_time=workflow.now()),
            "finalize batch",
        )
        workflow.upsert_search_attributes([sa.STATUS.value_set(result.status.value)])
        in_workflow.set_details(f"**Ended:** {result.status.value}\n\n" + _batch_details(inp, None))
        return result


def _batch_details(inp: BatchInput, running_to: int | None) -> str:
    text = f"**Rows:** {inp.rows_done} done, {inp.rows_failed} failed, of {inp.row_count}"
    if running_to is not None:
        text += f"\n\n**Running:** rows {inp.next_row}..{running_to - 1}"
    return text
