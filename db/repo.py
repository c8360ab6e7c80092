"""Every guarded write the engine makes: run transitions, task upserts and the idempotent terminal write.

Every state write here (`transition`, the single-statement progress and terminal writes, and the
v1 draft writes `stop`, `fail_draft`, `dispatch_draft`, `set_draft_state`, `rearm`, `approve`) goes
through `db.run_state.set_run_state`, guarded by `run_status.ALLOWED_FROM` or by the draft state, so
racing writers cannot move a run backwards or out of a terminal state; the one deliberate exception
is `rearm` (v1 retry/resume), which starts a new attempt of a FAILED or stopped run, and every write
of an execution names its attempt so the old one cannot write over it. (Batch rows, in
`db/batch_repo.py`, are inserted already terminal; their parent moves through `transition`.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import CTE, ColumnElement, select, text, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Pause, Run, utcnow
from db.run_state import SETTLED_TASKS, Transition, record_creation, set_run_state
from run_status import (
    RETRYABLE_FROM,
    TERMINAL,
    ApprovalState,
    Cause,
    DraftState,
    RunStatus,
)
from workflows.contracts import (
    CreateChildRunInput,
    FinalizeInput,
    RecordDecisionInput,
    RecordPauseInput,
    TaskRecord,
)


async def transition(
    session: AsyncSession,
    run_id: uuid.UUID,
    to: RunStatus,
    *,
    cause: str,
    reason: str | None = None,
    **fields: Any,
) -> Transition:
    """Move a run to `to` if its current status allows it.

    Extra `fields` (outputs, error, end_time, ...) are written in the same statement; `reason`
    defaults to the `error` written."""
    reason = reason if reason is not None else fields.get("error")
    return await set_run_state(session, run_id, status=to, cause=cause, reason=reason, fields=fields)


def _sql_in(statuses: Iterable[str]) -> str:
    # Statuses are our own enum constants, never caller input, so inlining them is safe.
    return ", ".join(f"'{x}'" for x in sorted(statuses))


_TASK_COLUMNS = (
    "seq, status, inputs, outputs, error, start_time, end_time, subworkflow, subworkflow_output, usage"
)
_UPSERT_TASKS = f"""
INSERT INTO tasks (id, run_id, node_id, scope, parent_task_id, {_TASK_COLUMNS})
SELECT r.id, {{run}}, r.node_id, r.scope, r.parent_task_id, {", ".join("r." + c for c in _TASK_COLUMNS.split(", "))}
FROM {{source}} jsonb_to_recordset(CAST(:tasks AS jsonb)) AS r(
    id uuid, node_id text, scope text, parent_task_id uuid, seq int, status text, inputs jsonb,
    outputs jsonb, error text, start_time timestamptz, end_time timestamptz, subworkflow jsonb,
    subworkflow_output jsonb, usage jsonb)
{{where}}
ON CONFLICT (run_id, scope, node_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _TASK_COLUMNS.split(", "))}
"""

# Progress is one statement, one round trip: a PENDING run moves to RUNNING (in `set_run_state`) and
# this upsert records the tasks (nothing, if the run was deleted meanwhile: a retried write must not
# fail forever on the foreign key). (A paused run stays PAUSED while independent branches run: only the
# last decision moves it back to RUNNING.) A settled task row never changes here, so a late, retried
# progress write cannot undo a terminal one. Writes of an execution name its attempt (v1 retry/resume
# start another one for the same run): a late write of an earlier attempt matches nothing. A null
# attempt (one-attempt runs) always matches.
_CURRENT = "(CAST(:attempt AS int) IS NULL OR attempt = CAST(:attempt AS int))"
# A progress write that lands after the run's terminal write (an execution terminated in Temporal
# whose activity still ran; the reconciler wrote CANCELED) must not add RUNNING task rows to it.
_OPEN = f"status NOT IN ({_sql_in(TERMINAL)})"
_PROGRESS = f"""{
    _UPSERT_TASKS.format(
        run=":run_id",
        source="",
        where=f"WHERE EXISTS (SELECT 1 FROM runs WHERE id = :run_id AND {_CURRENT} AND {_OPEN})",
    )
}
WHERE tasks.status NOT IN ({_sql_in(SETTLED_TASKS)})
"""
# The terminal write's task rows, written only if the run moved (`moved` is set_run_state's UPDATE).
_FINAL_TASKS = _UPSERT_TASKS.format(run="moved.id", source="moved,", where="")


def _carried(sql: str, name: str, **params: Any) -> CTE:
    return text(sql).bindparams(**params).columns().cte(name)


_TASK_IDS = uuid.UUID("5b0c4f9e-3c1a-4d8e-9f57-3d1e6c2b7a10")


def task_id(run_id: uuid.UUID | str, scope: str, node_id: str) -> uuid.UUID:
    """Task ids are derived from (run, scope, node), so a loop body's rows can name their loop's row."""
    return uuid.uuid5(_TASK_IDS, f"{run_id}|{scope}|{node_id}")


def parent_task_id(run_id: uuid.UUID | str, scope: str) -> uuid.UUID | None:
    """The id of the loop task whose body holds tasks of this scope (None at top level)."""
    if not scope:
        return None
    outer, _, last = scope.rpartition("/")
    return task_id(run_id, outer, last.rpartition("#")[0])


def _tasks_json(run_id: uuid.UUID | str, records: list[TaskRecord]) -> str:
    rows = []
    for r in records:
        row = r.model_dump(mode="json")
        row["id"] = str(task_id(run_id, r.scope, r.node_id))
        parent = parent_task_id(run_id, r.scope)
        row["parent_task_id"] = str(parent) if parent else None
        rows.append(row)
    return json.dumps(rows)


async def record_progress(
    session: AsyncSession, run_id: uuid.UUID, records: list[TaskRecord], attempt: int | None = None
) -> None:
    """Mark the run RUNNING (when allowed) and upsert the given task rows, in one statement."""
    rows = _carried(_PROGRESS, "progress", run_id=run_id, tasks=_tasks_json(run_id, records), attempt=attempt)
    await set_run_state(
        session,
        run_id,
        status=RunStatus.RUNNING,
        from_status=[RunStatus.PENDING],
        attempt=attempt,
        cause=Cause.ENGINE,
        also=[rows],
        # Every progress write after the run's first is refused by design: nobody reads why.
        explain=False,
    )


async def finalize(
    session: AsyncSession, arg: FinalizeInput, *, cause: str = Cause.ENGINE, reason: str | None = None
) -> tuple[bool, RunStatus | None]:
    """The idempotent terminal write: the first terminal status wins, later ones change nothing.

    Run status, outputs, every task row and the after-transition hooks are one statement (the v1
    output documents follow for v1 runs). Returns (recorded, status now stored).
    """
    run_id = uuid.UUID(arg.run_id)
    rows = _carried(_FINAL_TASKS, "final_tasks", tasks=_tasks_json(arg.run_id, arg.tasks))
    moved = await set_run_state(
        session,
        run_id,
        status=arg.status,
        from_draft=[None],
        attempt=arg.attempt,
        cause=cause,
        reason=reason if reason is not None else arg.error,
        fields={"outputs": arg.outputs, "error": arg.error, "end_time": arg.end_time},
        pause_comment=f"Closed: run {arg.status.value}",
        outputs=arg.outputs,
        also=[rows],
        written_tasks=[task_id(run_id, r.scope, r.node_id) for r in arg.tasks],
        now=arg.end_time,
    )
    if moved.accepted:
        return True, arg.status
    return False, moved.stored_status


async def create_child_run(session: AsyncSession, arg: CreateChildRunInput) -> None:
    """The row of a SubworkflowNode's child run, with its creation history (once: a retried write
    changes nothing)."""
    run_id, tenant_id = uuid.UUID(arg.run_id), uuid.UUID(arg.tenant_id)
    attempt = await session.scalar(
        insert(Run)
        .values(
            id=run_id,
            tenant_id=tenant_id,
            workflow_id=uuid.UUID(arg.workflow_id),
            workflow_version_id=uuid.UUID(arg.version_id) if arg.version_id else None,
            parent_run_id=uuid.UUID(arg.parent_run_id),
            triggered_by=uuid.UUID(arg.triggered_by) if arg.triggered_by else None,
            status=RunStatus.PENDING.value,
            run_type="subworkflow",
            initial_inputs=arg.initial_inputs,
            start_time=arg.start_time,
        )
        .on_conflict_do_nothing(index_elements=[Run.id])
        .returning(Run.attempt)
    )
    if attempt is not None:
        await record_creation(
            session,
            run_id,
            tenant_id,
            attempt,
            RunStatus.PENDING,
            None,
            cause=Cause.ENGINE,
            reason=f"Subworkflow of run {arg.parent_run_id}",
        )


async def run_exists(session: AsyncSession, run_id: uuid.UUID, attempt: int | None = None) -> bool:
    """Writes for a deleted run (or for an earlier attempt of it) are dropped rather than retried
    forever against the foreign key, or written over the current attempt."""
    q = select(Run.id).where(Run.id == run_id)
    if attempt is not None:
        q = q.where(Run.attempt == attempt)
    return (await session.scalar(q)) is not None


async def record_pause(session: AsyncSession, arg: RecordPauseInput) -> None:
    """The pause row (once per run and sequence number), the tasks, and the run PAUSED."""
    run_id = uuid.UUID(arg.run_id)
    p = arg.pause
    await session.execute(
        insert(Pause)
        .values(
            run_id=run_id,
            node_id=p.node_id,
            seq=p.seq,
            message=p.message,
            input_data=p.input_data,
            pause_time=p.pause_time,
            timeout_at=p.timeout_at,
        )
        .on_conflict_do_nothing(index_elements=[Pause.run_id, Pause.seq])
    )
    await transition(
        session, run_id, RunStatus.PAUSED, cause=Cause.ENGINE, reason=f"Waiting on node '{p.node_id}'"
    )
    await record_progress(session, run_id, arg.tasks, arg.attempt)


async def record_decision(session: AsyncSession, arg: RecordDecisionInput) -> None:
    """Complete the pause row with who decided what, record the tasks, and resume the run when no
    other pause is open; nothing for a deleted run or an earlier attempt. Two statements: this
    write sits between a person's decision and the run going on."""
    run_id = uuid.UUID(arg.run_id)
    current = select(Run.id).where(Run.id == run_id, _current_attempt(arg.attempt)).exists()
    closed = (
        update(Pause)
        .where(Pause.run_id == run_id, Pause.seq == arg.seq, Pause.resume_time.is_(None), current)
        .values(
            resume_time=arg.resume_time,
            resume_action=arg.action.value if arg.action else None,
            resume_user_id=arg.user_id,
            resume_inputs=arg.inputs,
            comments=arg.comments,
            decided_by=uuid.UUID(arg.decided_by) if arg.decided_by else None,
        )
        .returning(Pause.id)
        .cte("closed")
    )
    # Decided from the rows, not only the workflow's view: a pause opened by a write still in flight
    # keeps the run PAUSED (that write moves it back to PAUSED if this one lands first). The
    # statement sees the rows as they were before its UPDATE, hence the pause it closes is left out.
    other_open = (
        select(Pause.id)
        .where(Pause.run_id == run_id, Pause.resume_time.is_(None), Pause.id.not_in(select(closed.c.id)))
        .exists()
    )
    row = (await session.execute(select(current.label("current"), other_open.label("open")))).one()
    if not row.current:
        return
    if arg.still_paused or row.open:
        await record_progress(session, run_id, arg.tasks, arg.attempt)
        return
    # Recorded under the person who decided; a pause that timed out is the engine's.
    reason = f"{arg.action.value} (pause {arg.seq})" if arg.action else f"Pause {arg.seq} closed"
    progress = _carried(
        _PROGRESS, "progress", run_id=run_id, tasks=_tasks_json(run_id, arg.tasks), attempt=arg.attempt
    )
    await set_run_state(
        session,
        run_id,
        status=RunStatus.RUNNING,
        attempt=arg.attempt,
        cause=arg.decided_by or Cause.ENGINE,
        reason=reason,
        also=[progress],
    )


def _current_attempt(attempt: int | None) -> ColumnElement[bool]:
    return Run.attempt == attempt if attempt is not None else true()


# -- v1 runs: drafts, dispatch, stop, re-arm and approval ------------------------------------------------
# A v1 draft is stored PENDING with `draft_state` NOT_STARTED or PENDING (inputs still ingesting).


async def set_draft_state(
    session: AsyncSession, run_id: uuid.UUID, from_: str, to: str, *, cause: str = Cause.ENGINE
) -> Transition:
    """Move a draft between NOT_STARTED and PENDING (ingesting); accepted if it moved."""
    moved = await set_run_state(
        session,
        run_id,
        draft_state=DraftState(to),
        from_status=[RunStatus.PENDING],
        from_draft=[DraftState(from_)],
        cause=cause,
        fields={"updated_at": utcnow()},
    )
    return moved


async def dispatch_draft(
    session: AsyncSession, run_id: uuid.UUID, from_: list[str], *, cause: str, **fields: Any
) -> Transition:
    """Start a draft: it stops being a draft (IN_PROGRESS) with its snapshot and inputs pinned.

    Only a PENDING run whose draft state is in `from_` moves, so of racing starts exactly one wins."""
    now = utcnow()
    moved = await set_run_state(
        session,
        run_id,
        draft_state=None,
        from_status=[RunStatus.PENDING],
        from_draft=[DraftState(s) for s in from_],
        cause=cause,
        reason="Started",
        fields={"start_time": now, "updated_at": now, **fields},
    )
    return moved


async def fail_draft(
    session: AsyncSession, run_id: uuid.UUID, error: str, *, cause: str = Cause.ENGINE
) -> Transition:
    """An armed draft whose input failed ingestion is FAILED without having started."""
    now = utcnow()
    moved = await set_run_state(
        session,
        run_id,
        status=RunStatus.FAILED,
        draft_state=None,
        from_status=[RunStatus.PENDING],
        from_draft=list(DraftState),
        cause=cause,
        reason=error,
        fields={"error": error, "end_time": now, "updated_at": now},
        now=now,
    )
    return moved


async def stop(session: AsyncSession, run_id: uuid.UUID, reason: str, *, cause: str) -> Transition:
    """Mark a started, unfinished run CANCELED (a pure database write; the caller cancels Temporal);
    its unsettled tasks are canceled and its open pauses closed with it.

    A completion that committed first wins: the guard leaves terminal runs and drafts untouched."""
    now = utcnow()
    moved = await set_run_state(
        session,
        run_id,
        status=RunStatus.CANCELED,
        from_draft=[None],
        cause=cause,
        reason=reason,
        fields={"error": reason, "end_time": now, "updated_at": now},
        now=now,
    )
    return moved


async def rearm(
    session: AsyncSession, run_id: uuid.UUID, *, to_draft: bool, cause: str, reason: str
) -> Transition:
    """Retry/resume: a FAILED (or stopped) run becomes PENDING again for a new attempt, or a startable
    draft when it never started. Tasks, pauses and output documents of the last attempt are dropped
    (the run's state history keeps how it went)."""
    now = utcnow()
    moved = await set_run_state(
        session,
        run_id,
        status=RunStatus.PENDING,
        from_status=RETRYABLE_FROM,
        draft_state=DraftState.NOT_STARTED if to_draft else None,
        approval_state=ApprovalState.NOT_REQUIRED,
        cause=cause,
        reason=reason,
        fields={
            "error": None,
            "outputs": None,
            "end_time": None,
            "start_time": now,
            "updated_at": now,
            "attempt": Run.attempt + 1,
            "approved_at": None,
            "approval_reason": None,
        },
        now=now,
    )
    return moved


async def approve(session: AsyncSession, run_id: uuid.UUID, reason: str | None, *, cause: str) -> Transition:
    """The run's approval, and with it its output documents'; once (an approved run stays so)."""
    now = utcnow()
    moved = await set_run_state(
        session,
        run_id,
        approval_state=ApprovalState.APPROVED,
        from_approval=[ApprovalState.NOT_REQUIRED, ApprovalState.PENDING],
        cause=cause,
        reason=reason,
        fields={"approval_reason": reason, "approved_at": now, "updated_at": now},
        now=now,
    )
    return moved
