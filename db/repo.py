"""Every guarded write the engine makes: run transitions, task upserts and the idempotent terminal write.

No other code changes a run's status. Every status write here (`transition`, and the single-statement
progress and terminal writes) is one UPDATE guarded by `run_status.ALLOWED_FROM`, so racing writers
cannot move a run backwards or out of a terminal state.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Run, Task, utcnow
from run_status import ALLOWED_FROM, RunStatus, TaskStatus
from workflows.schema import FinalizeInput, TaskRecord

_SETTLED = [TaskStatus.COMPLETED.value, TaskStatus.FAILED.value, TaskStatus.CANCELED.value]


async def transition(session: AsyncSession, run_id: uuid.UUID, to: RunStatus, **fields: Any) -> bool:
    """Move a run to `to` if its current status allows it; returns whether it moved.

    Extra `fields` (outputs, error, end_time, ...) are written in the same statement.
    """
    allowed = [s.value for s in ALLOWED_FROM[to]]
    result = await session.execute(
        update(Run).where(Run.id == run_id, Run.status.in_(allowed)).values(status=to.value, **fields)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _sql_in(statuses: Iterable[str]) -> str:
    # Statuses are our own enum constants, never caller input, so inlining them is safe.
    return ", ".join(f"'{x}'" for x in sorted(statuses))


_TASK_COLUMNS = "seq, status, inputs, outputs, error, start_time, end_time"
_UPSERT_TASKS = f"""
INSERT INTO tasks (id, run_id, node_id, {_TASK_COLUMNS})
SELECT gen_random_uuid(), {{run}}, r.node_id, r.seq, r.status, r.inputs, r.outputs, r.error, r.start_time, r.end_time
FROM {{source}} jsonb_to_recordset(CAST(:tasks AS jsonb)) AS r(
    node_id text, seq int, status text, inputs jsonb, outputs jsonb, error text,
    start_time timestamptz, end_time timestamptz)
ON CONFLICT (run_id, node_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _TASK_COLUMNS.split(", "))}
"""

# One statement, one round trip: mark the run RUNNING (if it may move there) and record progress.
# A settled task row never changes here, so a late, retried progress write cannot undo a terminal one.
_PROGRESS = text(
    f"""
WITH moved AS (
    UPDATE runs SET status = 'RUNNING'
    WHERE id = :run_id AND status IN ({_sql_in(ALLOWED_FROM[RunStatus.RUNNING])})
)
{_UPSERT_TASKS.format(run=":run_id", source="")}
WHERE tasks.status NOT IN ({_sql_in(_SETTLED)})
"""
)


def _finalize_sql(status: RunStatus) -> TextClause:
    return text(
        f"""
WITH moved AS (
    UPDATE runs SET status = '{status.value}', outputs = CAST(:outputs AS jsonb), error = :error, end_time = :end_time
    WHERE id = :run_id AND status IN ({_sql_in(ALLOWED_FROM[status])})
    RETURNING id
), written AS (
    {_UPSERT_TASKS.format(run="moved.id", source="moved,")}
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT status FROM runs WHERE id = :run_id) AS before
"""
    )


def _tasks_json(records: list[TaskRecord]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in records])


async def record_progress(session: AsyncSession, run_id: uuid.UUID, records: list[TaskRecord]) -> None:
    """Mark the run RUNNING (when allowed) and upsert the given task rows, in one statement."""
    await session.execute(_PROGRESS, {"run_id": run_id, "tasks": _tasks_json(records)})


async def finalize(session: AsyncSession, arg: FinalizeInput) -> tuple[bool, RunStatus | None]:
    """The idempotent terminal write: the first terminal status wins, later ones change nothing.

    Run status, outputs and every task row are written in one statement. Returns
    (recorded, status now stored).
    """
    row = (
        await session.execute(
            _finalize_sql(arg.status),
            {
                "run_id": uuid.UUID(arg.run_id),
                "outputs": json.dumps(arg.outputs),
                "error": arg.error,
                "end_time": arg.end_time,
                "tasks": _tasks_json(arg.tasks),
            },
        )
    ).one()
    if row.moved:
        return True, arg.status
    return False, RunStatus(row.before) if row.before else None


async def cancel_unsettled_tasks(
    session: AsyncSession, run_id: uuid.UUID, reason: str, now: datetime | None = None
) -> None:
    await session.execute(
        update(Task)
        .where(Task.run_id == run_id, Task.status.not_in(_SETTLED))
        .values(status=TaskStatus.CANCELED.value, error=reason, end_time=now or utcnow())
    )
