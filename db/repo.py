"""Every guarded write the engine makes: run transitions, task upserts and the idempotent terminal write.

`transition` is the only code that changes a run's status; it is one UPDATE guarded by
`run_status.ALLOWED_FROM`, so racing writers cannot move a run backwards or out of a terminal state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
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


async def run_status(session: AsyncSession, run_id: uuid.UUID) -> RunStatus | None:
    value = await session.scalar(select(Run.status).where(Run.id == run_id))
    return RunStatus(value) if value else None


def _task_row(run_id: uuid.UUID, rec: TaskRecord) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "run_id": run_id,
        "node_id": rec.node_id,
        "seq": rec.seq,
        "status": rec.status.value,
        "inputs": rec.inputs,
        "outputs": rec.outputs,
        "error": rec.error,
        "start_time": rec.start_time,
        "end_time": rec.end_time,
    }


async def upsert_tasks(
    session: AsyncSession, run_id: uuid.UUID, records: list[TaskRecord], *, overwrite_settled: bool = False
) -> None:
    """Insert or update one row per node. Unless `overwrite_settled`, a settled row never changes,
    so a late, retried progress write cannot undo a terminal one."""
    if not records:
        return
    stmt = insert(Task).values([_task_row(run_id, r) for r in records])
    cols = ("seq", "status", "inputs", "outputs", "error", "start_time", "end_time")
    where = None if overwrite_settled else Task.status.not_in(_SETTLED)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Task.run_id, Task.node_id],
        set_={c: stmt.excluded[c] for c in cols},
        where=where,
    )
    await session.execute(stmt)


async def finalize(session: AsyncSession, arg: FinalizeInput) -> tuple[bool, RunStatus | None]:
    """The idempotent terminal write: the first terminal status wins, later ones change nothing.

    Returns (recorded, status now stored).
    """
    run_id = uuid.UUID(arg.run_id)
    moved = await transition(
        session, run_id, arg.status, outputs=arg.outputs, error=arg.error, end_time=arg.end_time
    )
    if moved:
        await upsert_tasks(session, run_id, arg.tasks, overwrite_settled=True)
        return True, arg.status
    return False, await run_status(session, run_id)


async def cancel_unsettled_tasks(
    session: AsyncSession, run_id: uuid.UUID, reason: str, now: datetime | None = None
) -> None:
    await session.execute(
        update(Task)
        .where(Task.run_id == run_id, Task.status.not_in(_SETTLED))
        .values(status=TaskStatus.CANCELED.value, error=reason, end_time=now or utcnow())
    )
