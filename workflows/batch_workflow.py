"""Batch runs: a parent over a dataset, chunks of rows in child workflows, each row a run of the graph.

`BatchWorkflow` (the parent run's execution) starts one `BatchChunkWorkflow` at a time for up to
`chunk_rows` rows and continues-as-new every few chunks, so no history grows with the dataset.
A chunk drives up to `mini_batch_size` rows at once, each with its own `GraphRunner` (Python nodes
as local activities, pure nodes inline), and records finished rows in bulk: child runs, tasks,
output lines and the parent's counters, idempotently, so a replayed chunk records each row once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import deque
from datetime import timedelta
from typing import Any

from temporalio import workflow
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
    from workflows.node_kinds.base import DB_RETRY, db_write
    from workflows.node_kinds.python_func import PythonBatcher
    from workflows.search_attributes import publish_status, temporal_workflow_id

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


def row_payload(input_node: Any, data: dict[str, Any], *, json_text: bool = True) -> dict[str, Any]:
    """The InputNode's payload for one dataset row: its declared fields (all columns if it declares
    none), text cells converted to the declared types as run inputs are (`nodes.convert_run_inputs`;
    JSON text for lists and objects when `json_text`), blank ones left out.

    Raises:
        InvalidInput: the row does not fit the InputNode.
    """
    declared = nodes.declared_input_fields(input_node)
    if not declared:
        return dict(data)
    payload = {field.name: data[field.name] for field in declared if field.name in data}
    return nodes.validate_run_inputs(
        input_node, nodes.convert_run_inputs(input_node, payload, json_text=json_text)
    )


@dataclasses.dataclass
class _Chunk:
    """Where a chunk is: rows loaded up to `loaded` (those not started yet `queued`), rows `running`,
    rows `finished` but not yet written; it takes rows up to `stop_at`."""

    loaded: int
    stop_at: int
    flushed_at: float
    queued: deque[tuple[int, dict[str, Any]]] = dataclasses.field(default_factory=deque)
    running: dict[int, asyncio.Task[BatchRow]] = dataclasses.field(default_factory=dict)
    finished: list[BatchRow] = dataclasses.field(default_factory=list)

    def collect(self) -> None:
        for idx, task in list(self.running.items()):
            if task.done():
                del self.running[idx]
                self.finished.append(task.result())

    def stop_early_if_history_full(self) -> None:
        if _history_full() and self.stop_at > self.loaded - len(self.queued):
            # Rows not started yet are left to the next chunk.
            self.stop_at = self.loaded - len(self.queued)
            self.queued.clear()
            self.loaded = self.stop_at


@dataclasses.dataclass
class _Pipe:
    """A pipelined chunk's database work in flight: the next page's load, the last rows' write."""

    loading: asyncio.Task[tuple[int, list[dict[str, Any]]]] | None = None
    writing: asyncio.Task[None] | None = None
    unwritten: list[BatchRow] = dataclasses.field(default_factory=list)

    def in_flight(self) -> list[asyncio.Task[Any]]:
        return [t for t in (self.loading, self.writing) if t is not None and not t.done()]

    def take_page(self, chunk: _Chunk) -> None:
        """Queue a loaded page's rows (a page that no longer fits, after the chunk stopped early
        to keep its history small, is dropped: those rows are the next chunk's)."""
        if self.loading is None or not self.loading.done():
            return
        start, page = self.loading.result()
        self.loading = None
        if start != chunk.loaded or start >= chunk.stop_at:
            return
        if not page:  # the dataset is shorter than counted: the missing rows are reported by the parent
            chunk.stop_at = chunk.loaded
        page = page[: chunk.stop_at - start]
        chunk.queued.extend((start + i, data) for i, data in enumerate(page))
        chunk.loaded += len(page)

    async def stop(self, chunk: _Chunk) -> None:
        """On cancel: drop the load; let the write in flight end (rows it did not write are
        written again by the cancel path's flush: writes are idempotent)."""
        if self.loading is not None:
            self.loading.cancel()
        if self.writing is not None:
            await asyncio.gather(self.writing, return_exceptions=True)
        chunk.finished.extend(self.unwritten)
        self.unwritten = []


@workflow.defn(name="BatchChunkWorkflow")
class BatchChunkWorkflow:
    @workflow.run
    async def run(self, inp: BatchChunkInput) -> ChunkResult:
        batch = inp.batch
        self._batcher = PythonBatcher(max_items=batch.mini_batch_size)
        plan = graph.GraphPlan.build(batch.definition)
        input_node = plan.by_id[plan.input_node_id]
        chunk = _Chunk(loaded=inp.start, stop_at=inp.end, flushed_at=workflow.time())
        self._counts = [0, 0]  # rows recorded: done, failed
        # Chunks started before this change load, run and write one step at a time; their histories
        # replay on the sequential loop below.
        if workflow.patched("batch-pipeline"):
            return await self._run_pipelined(batch, input_node, chunk)
        try:
            while True:
                await self._load_page(batch, chunk)
                while chunk.queued and len(chunk.running) < batch.mini_batch_size:
                    idx, data = chunk.queued.popleft()
                    chunk.running[idx] = asyncio.create_task(self._row(batch, input_node, idx, data))
                if not chunk.running:
                    break
                await workflow.wait(list(chunk.running.values()), return_when=asyncio.FIRST_COMPLETED)
                chunk.collect()
                await self._flush_if_due(batch, chunk)
                chunk.stop_early_if_history_full()
        except (asyncio.CancelledError, CancelledError):
            await self._cancel_rows(batch, chunk)
            raise
        await self._flush(batch, chunk.finished)
        return ChunkResult(next_row=chunk.stop_at, rows_done=self._counts[0], rows_failed=self._counts[1])

    async def _run_pipelined(self, batch: BatchInput, input_node: Any, chunk: _Chunk) -> ChunkResult:
        """The chunk with its database work off the rows' path: the next page loads while rows run,
        and finished rows are written while the next rows run (one load and one write in flight at
        most). Under load each local activity costs a hand-off through the worker and the server;
        waiting on them in turn was most of a row's time (docs/benchmarks.md, "Batch rows")."""
        pipe = _Pipe()
        try:
            while True:
                if pipe.loading is None and not chunk.queued and chunk.loaded < chunk.stop_at:
                    pipe.loading = asyncio.create_task(self._load(batch, chunk.loaded, chunk.stop_at))
                if not chunk.queued and not chunk.running and pipe.loading is not None:
                    await pipe.loading
                pipe.take_page(chunk)
                while chunk.queued and len(chunk.running) < batch.mini_batch_size:
                    idx, data = chunk.queued.popleft()
                    chunk.running[idx] = asyncio.create_task(self._row(batch, input_node, idx, data))
                if (
                    pipe.loading is None
                    and len(chunk.queued) < batch.mini_batch_size
                    and chunk.loaded < chunk.stop_at
                ):
                    # Prefetch: the next page is ready by the time the running rows finish.
                    pipe.loading = asyncio.create_task(self._load(batch, chunk.loaded, chunk.stop_at))
                if not chunk.running:
                    break
                await workflow.wait(
                    [*chunk.running.values(), *pipe.in_flight()], return_when=asyncio.FIRST_COMPLETED
                )
                chunk.collect()
                pipe.take_page(chunk)
                if pipe.writing is not None and pipe.writing.done():
                    pipe.writing.result()  # a write that failed for good fails the chunk, as before
                    pipe.writing = None
                if pipe.writing is None and self._flush_due(chunk):
                    # `_flush` empties the list once written; what a cancel leaves in it is written again.
                    pipe.unwritten, chunk.finished = chunk.finished, []
                    pipe.writing = asyncio.create_task(self._flush(batch, pipe.unwritten))
                    chunk.flushed_at = workflow.time()
                chunk.stop_early_if_history_full()
            if pipe.writing is not None:
                await pipe.writing
        except (asyncio.CancelledError, CancelledError):
            await pipe.stop(chunk)
            await self._cancel_rows(batch, chunk)
            raise
        await self._flush(batch, chunk.finished)
        return ChunkResult(next_row=chunk.stop_at, rows_done=self._counts[0], rows_failed=self._counts[1])

    @staticmethod
    async def _load(batch: BatchInput, start: int, stop_at: int) -> tuple[int, list[dict[str, Any]]]:
        page = await workflow.execute_local_activity_method(
            RunActivitiesContract.load_dataset_rows,
            LoadRowsInput(dataset_id=batch.dataset_id, start=start, limit=min(_PAGE_ROWS, stop_at - start)),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary="load rows",
        )
        return start, page

    @staticmethod
    def _flush_due(chunk: _Chunk) -> bool:
        return len(chunk.finished) >= _FLUSH_ROWS or bool(
            chunk.finished and workflow.time() - chunk.flushed_at >= _FLUSH_SECONDS
        )

    @staticmethod
    async def _load_page(batch: BatchInput, chunk: _Chunk) -> None:
        """Load the next page of rows once every loaded row has started."""
        if chunk.queued or chunk.loaded >= chunk.stop_at:
            return
        page = await workflow.execute_local_activity_method(
            RunActivitiesContract.load_dataset_rows,
            LoadRowsInput(
                dataset_id=batch.dataset_id,
                start=chunk.loaded,
                limit=min(_PAGE_ROWS, chunk.stop_at - chunk.loaded),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary="load rows",
        )
        if not page:  # the dataset is shorter than counted: the missing rows are reported by the parent
            chunk.stop_at = chunk.loaded
        chunk.queued.extend((chunk.loaded + i, data) for i, data in enumerate(page))
        chunk.loaded += len(page)

    async def _flush_if_due(self, batch: BatchInput, chunk: _Chunk) -> None:
        if len(chunk.finished) >= _FLUSH_ROWS or (
            chunk.finished and workflow.time() - chunk.flushed_at >= _FLUSH_SECONDS
        ):
            await self._flush(batch, chunk.finished)
            chunk.flushed_at = workflow.time()

    async def _cancel_rows(self, batch: BatchInput, chunk: _Chunk) -> None:
        """Cancel the running rows and write every finished one (a canceled row finishes as such)."""
        for task in chunk.running.values():
            task.cancel()
        rows = await asyncio.gather(*chunk.running.values(), return_exceptions=True)
        chunk.finished.extend(r for r in rows if isinstance(r, BatchRow))
        await self._flush(batch, chunk.finished)

    async def _row(self, batch: BatchInput, input_node: Any, idx: int, data: dict[str, Any]) -> BatchRow:
        run_id = row_run_id(batch.run_id, idx)
        start = workflow.now()
        try:
            # Rows with JSON text for a list or object failed before this change; executions that
            # started before it keep failing them, so their commands replay unchanged.
            payload = row_payload(input_node, data, json_text=workflow.patched("batch-row-json-text"))
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
            publish_status(RunStatus.RUNNING)
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
                    id=f"{temporal_workflow_id(inp.run_id)}/rows-{inp.next_row}",
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
        publish_status(result.status)
        in_workflow.set_details(f"**Ended:** {result.status.value}\n\n" + _batch_details(inp, None))
        return result


def _batch_details(inp: BatchInput, running_to: int | None) -> str:
    text = f"**Rows:** {inp.rows_done} done, {inp.rows_failed} failed, of {inp.row_count}"
    if running_to is not None:
        text += f"\n\n**Running:** rows {inp.next_row}..{running_to - 1}"
    return text
