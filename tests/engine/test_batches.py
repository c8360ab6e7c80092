"""`BatchWorkflow` and its chunks: rows in chunks across continue-as-new, Python calls grouped per node."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from run_status import RunStatus
from tests.builders import double_graph
from tests.engine.conftest import Engine
from tests.engine.stubs import BatchInput, RunResult, UserError, WorkflowDefinition
from workflows.search_attributes import temporal_workflow_id

ROWS = 14
# Five chunks of three rows: the parent continues-as-new after its fourth chunk.
CHUNK_ROWS = 3


async def run_batch(engine: Engine, mini_batch_size: int) -> RunResult:
    engine.stubs.rows = [{"x": i} for i in range(ROWS)]
    run_id = str(uuid.uuid4())
    batch = BatchInput(
        run_id=run_id,
        tenant_id=str(uuid.uuid4()),
        workflow_id=str(uuid.uuid4()),
        definition=WorkflowDefinition.model_validate(double_graph()),
        dataset_id=str(uuid.uuid4()),
        output_file_id=str(uuid.uuid4()),
        row_count=ROWS,
        mini_batch_size=mini_batch_size,
        chunk_rows=CHUNK_ROWS,
    )
    result: RunResult = await engine.client.execute_workflow(
        "BatchWorkflow",
        batch,
        id=temporal_workflow_id(run_id),
        task_queue=engine.task_queue,
        result_type=RunResult,
    )
    return result


def recorded(engine: Engine) -> dict[int, Any]:
    rows = [row for call in engine.stubs.recorded_rows for row in call.rows]
    by_idx = {row.idx: row for row in rows}
    assert len(by_idx) == len(rows), "a row was recorded twice"
    return by_idx


async def test_batch_runs_every_row_once_across_chunks_with_grouped_python_calls(engine: Engine) -> None:
    result = await run_batch(engine, mini_batch_size=3)

    assert result.status == RunStatus.COMPLETED
    rows = recorded(engine)
    assert sorted(rows) == list(range(ROWS))
    assert all(row.status == RunStatus.COMPLETED for row in rows.values())
    assert {i: row.outputs["output_node"]["y"] for i, row in rows.items()} == {i: 2 * i for i in range(ROWS)}
    # Rows of a chunk that reach the Python node together share one sandboxed call.
    assert engine.stubs.python_calls == []
    sizes = [len(call.items) for call in engine.stubs.batch_calls]
    assert sum(sizes) == ROWS
    assert max(sizes) == 3
    assert len(sizes) == 5  # one call per chunk
    starts = [load.start for load in engine.stubs.row_loads]
    assert starts == list(range(0, ROWS, CHUNK_ROWS))
    assert len(engine.stubs.batch_finalized) == 1


async def test_a_failing_row_is_recorded_and_the_batch_goes_on(engine: Engine) -> None:
    def fails_on_three(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs["input_node"]["x"] == 3:
            raise UserError("no threes")
        return {"y": 2 * inputs["input_node"]["x"]}

    engine.stubs.python = fails_on_three
    with pytest.raises(WorkflowFailureError) as failure:
        await run_batch(engine, mini_batch_size=3)

    assert isinstance(failure.value.cause, ApplicationError)
    rows = recorded(engine)
    assert sorted(rows) == list(range(ROWS))
    assert rows[3].status == RunStatus.FAILED
    assert rows[3].error == "Node 'py1' failed: UserError: no threes"
    assert [i for i, row in rows.items() if row.status != RunStatus.COMPLETED] == [3]
