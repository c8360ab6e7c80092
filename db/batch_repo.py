"""Batch writes: dataset rows read by index, finished rows recorded in bulk, the parent's terminal write.

Every write is idempotent, so a chunk replayed after a worker crash records each row once: child
runs, tasks and output lines are keyed (run id from the parent and row index; line by row index),
and the parent's counters move only by the rows that were new.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Text, cast, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import DatasetRow, OutputFile, Run, utcnow
from db.repo import parent_task_id, task_id, transition
from run_status import Cause, RunStatus
from workflows.contracts import FinalizeBatchInput, RecordRowsInput, RunResult

_INSERT_RUNS = text(
    """
WITH new_runs AS (
    INSERT INTO runs (id, tenant_id, workflow_id, workflow_version_id, parent_run_id, triggered_by,
                      status, run_type, initial_inputs, outputs, error, start_time, end_time)
    SELECT r.id, :tenant_id, :workflow_id, :version_id, :parent_id, :triggered_by,
           r.status, 'batch', r.initial_inputs, r.outputs, r.error, r.start_time, r.end_time
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        id uuid, status text, initial_inputs jsonb, outputs jsonb, error text,
        start_time timestamptz, end_time timestamptz)
    WHERE EXISTS (SELECT 1 FROM runs WHERE id = :parent_id)
    ON CONFLICT (id) DO NOTHING
    RETURNING status
)
UPDATE runs SET
    rows_done = coalesce(rows_done, 0) + (SELECT count(*) FROM new_runs),
    rows_failed = coalesce(rows_failed, 0) + (SELECT count(*) FROM new_runs WHERE status <> 'COMPLETED')
WHERE id = :parent_id
RETURNING (SELECT count(*) FROM new_runs) AS added
"""
)

_INSERT_TASKS = text(
    """
INSERT INTO tasks (id, run_id, node_id, scope, parent_task_id, seq, status, inputs, outputs, error,
                   start_time, end_time, subworkflow, subworkflow_output, usage)
SELECT t.id, t.run_id, t.node_id, t.scope, t.parent_task_id, t.seq, t.status, t.inputs, t.outputs,
       t.error, t.start_time, t.end_time, t.subworkflow, t.subworkflow_output, t.usage
FROM jsonb_to_recordset(CAST(:tasks AS jsonb)) AS t(
    id uuid, run_id uuid, node_id text, scope text, parent_task_id uuid, seq int, status text,
    inputs jsonb, outputs jsonb, error text, start_time timestamptz, end_time timestamptz,
    subworkflow jsonb, subworkflow_output jsonb, usage jsonb)
WHERE EXISTS (SELECT 1 FROM runs WHERE id = t.run_id)
ON CONFLICT (run_id, scope, node_id) DO NOTHING
"""
)

_INSERT_LINES = text(
    """
INSERT INTO output_lines (output_file_id, idx, line)
SELECT :file_id, l.idx, l.line
FROM jsonb_to_recordset(CAST(:lines AS jsonb)) AS l(idx int, line jsonb)
WHERE EXISTS (SELECT 1 FROM output_files WHERE id = :file_id)
ON CONFLICT (output_file_id, idx) DO NOTHING
"""
)


# A page of rows travels as one local-activity result (recorded in history, 2 MB at most).
PAGE_BYTES = 512 * 1024


async def load_rows(
    session: AsyncSession, dataset_id: uuid.UUID, start: int, limit: int, max_bytes: int = PAGE_BYTES
) -> list[dict[str, Any]]:
    """Up to `limit` rows from index `start`, in order, stopping before `max_bytes` of JSON (at
    least one row: the upload limits a row to 256 KB)."""
    result = await session.execute(
        select(DatasetRow.data, func.octet_length(cast(DatasetRow.data, Text)))
        .where(DatasetRow.dataset_id == dataset_id, DatasetRow.idx >= start)
        .order_by(DatasetRow.idx)
        .limit(limit)
    )
    rows: list[dict[str, Any]] = []
    total = 0
    for data, size in result:
        total += size or 0
        if rows and total > max_bytes:
            break
        rows.append(data)
    return rows


def output_line(idx: int, run_id: str, outputs: dict[str, Any], error: str | None) -> dict[str, Any]:
    """PySpur's line `{node_id: outputs}` plus the reserved keys `_row`, `_run_id`, `_error`."""
    return {**outputs, "_row": idx, "_run_id": run_id, "_error": error}


async def record_rows(session: AsyncSession, arg: RecordRowsInput) -> int:
    """Record finished rows: child runs, their tasks, output lines and the parent's counters.

    Returns how many rows were new (0 when a replayed chunk repeats a write)."""
    runs = [
        {
            "id": row.run_id,
            "status": row.status.value,
            "initial_inputs": row.initial_inputs,
            "outputs": row.outputs,
            "error": row.error,
            "start_time": row.start_time.isoformat(),
            "end_time": row.end_time.isoformat(),
        }
        for row in arg.rows
    ]
    added = await session.scalar(
        _INSERT_RUNS,
        {
            "rows": json.dumps(runs),
            "tenant_id": uuid.UUID(arg.tenant_id),
            "workflow_id": uuid.UUID(arg.workflow_id),
            "version_id": uuid.UUID(arg.version_id) if arg.version_id else None,
            "parent_id": uuid.UUID(arg.parent_run_id),
            "triggered_by": uuid.UUID(arg.triggered_by) if arg.triggered_by else None,
        },
    )
    tasks = []
    for row in arg.rows:
        for record in row.tasks:
            item = record.model_dump(mode="json")
            item["id"] = str(task_id(row.run_id, record.scope, record.node_id))
            item["run_id"] = row.run_id
            parent = parent_task_id(row.run_id, record.scope)
            item["parent_task_id"] = str(parent) if parent else None
            tasks.append(item)
    if tasks:
        await session.execute(_INSERT_TASKS, {"tasks": json.dumps(tasks)})
    lines = [
        {"idx": row.idx, "line": output_line(row.idx, row.run_id, row.outputs, row.error)} for row in arg.rows
    ]
    file_id = uuid.UUID(arg.output_file_id)
    await session.execute(_INSERT_LINES, {"file_id": file_id, "lines": json.dumps(lines)})
    if added:
        await session.execute(update(OutputFile).where(OutputFile.id == file_id).values(updated_at=utcnow()))
    return int(added or 0)


async def finalize_batch(session: AsyncSession, arg: FinalizeBatchInput) -> RunResult:
    """The parent's terminal write, decided from its counters; the first terminal write wins."""
    run_id = uuid.UUID(arg.run_id)
    row = (
        await session.execute(select(Run.rows_total, Run.rows_done, Run.rows_failed).where(Run.id == run_id))
    ).one_or_none()
    if row is None:
        return RunResult(run_id=arg.run_id, status=RunStatus.CANCELED, outputs={}, recorded=False)
    total, done, failed = row.rows_total or 0, row.rows_done or 0, row.rows_failed or 0
    summary = {"rows_total": total, "rows_completed": done - failed, "rows_failed": failed}
    if arg.canceled:
        status, error = RunStatus.CANCELED, f"Run canceled after {done} of {total} rows"
    elif failed or done < total:
        status, error = RunStatus.FAILED, f"{failed + total - done} of {total} rows did not complete"
    else:
        status, error = RunStatus.COMPLETED, None
    moved = await transition(
        session, run_id, status, cause=Cause.ENGINE, error=error, outputs=summary, end_time=arg.end_time
    )
    if not moved.accepted:
        return RunResult(
            run_id=arg.run_id,
            status=moved.stored_status or status,
            outputs=summary,
            error=error,
            recorded=False,
        )
    return RunResult(run_id=arg.run_id, status=status, outputs=summary, error=error)
