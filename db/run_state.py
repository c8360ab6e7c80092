"""The one writer of run state: `set_run_state` applies `run_status`'s transition table, appends a
`run_state_history` row per axis it changes, and runs the after-transition hooks.

A move is one statement: the guarded UPDATE, the history rows and the hooks that are SQL (cancel
unsettled tasks, close open pauses, approve output documents, drop the last attempt's rows) are CTEs
of it, and a writer may add its own (the engine's task rows). Only the v1 output documents need Python;
the UPDATE returns the row's `v1` flag, so other runs pay no query for them.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    String,
    Text,
    Uuid,
    all_,
    delete,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db import v1_repo
from db.models import Document, Pause, Run, RunStateHistory, Task, utcnow
from run_status import (
    ALLOWED_FROM,
    TERMINAL,
    ApprovalState,
    DocumentOrigin,
    DraftState,
    Hook,
    RunStatus,
    StateAxis,
    TaskStatus,
    hooks_after,
)
from telemetry.metrics import get_metrics, tenant

SETTLED_TASKS = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED)


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # `draft_state=None` clears the draft state; KEEP leaves it alone


@dataclass(frozen=True)
class Transition:
    """What a guarded write did: `accepted`, or nothing at all (the guard refused it).

    A refused move says why (`refusal`, for logs and error messages) and what the run's status is
    now (`stored_status`, None if there is no such run), read after the refusal so that a write
    committed while the move waited on the row is seen. True in a boolean context when accepted."""

    accepted: bool
    from_status: RunStatus | None = None
    v1: bool = False
    refusal: str | None = None
    stored_status: RunStatus | None = None

    def __bool__(self) -> bool:
        return self.accepted


async def set_run_state(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    cause: str,
    reason: str | None = None,
    status: RunStatus | None = None,
    draft_state: DraftState | _Keep | None = KEEP,
    approval_state: ApprovalState | None = None,
    from_status: Collection[RunStatus] | None = None,
    from_draft: Collection[DraftState | None] | None = None,
    from_approval: Collection[ApprovalState] | None = None,
    attempt: int | None = None,
    fields: Mapping[str, Any] | None = None,
    pause_comment: str | None = None,
    outputs: dict[str, Any] | None = None,
    also: Sequence[CTE] = (),
    written_tasks: Sequence[uuid.UUID] = (),
    now: datetime | None = None,
    explain: bool = True,
) -> Transition:
    """Move a run if its state allows it, with its history rows and after-transition hooks.

    `cause` is a user's id or a `run_status.Cause`. `from_status` defaults to `ALLOWED_FROM[status]`;
    `from_draft`/`from_approval` narrow the move further (None in `from_draft` = not a draft). A given
    `attempt` fences the write to that execution of the run. `fields` are written with the move; `also`
    are statements the move carries whether or not it is accepted; the task-cancel hook leaves
    `written_tasks` (settled by one of them) alone. `outputs` feed the v1 output documents. `explain=False` skips reading why a refused move was
    refused (a round trip) for a caller that does not look.
    """
    now = now or utcnow()
    targets: dict[StateAxis, str | None] = {}
    if status is not None:
        targets[StateAxis.STATUS] = status.value
        from_status = ALLOWED_FROM[status] if from_status is None else from_status
    if not isinstance(draft_state, _Keep):
        targets[StateAxis.DRAFT_STATE] = draft_state.value if draft_state else None
    if approval_state is not None:
        targets[StateAxis.APPROVAL_STATE] = approval_state.value
    allowed: dict[StateAxis, Collection[str | None] | None] = {
        StateAxis.STATUS: from_status,
        StateAxis.DRAFT_STATE: from_draft,
        StateAxis.APPROVAL_STATE: from_approval,
    }
    guards: list[ColumnElement[bool]] = [Run.id == run_id]
    for axis, states in allowed.items():
        if states is not None:
            guards.append(_one_of(Run.__table__.c[axis.value], states))
    if attempt is not None:
        guards.append(Run.attempt == attempt)
    values: dict[str, Any] = {axis.value: to for axis, to in targets.items()}
    moved = _moved(run_id, targets, allowed, guards, {**values, **(fields or {})})
    hooks = tuple(dict.fromkeys(h for axis, to in targets.items() for h in hooks_after(axis, to)))
    ctes = [_history(moved, targets, cause, reason)]
    ctx = _Ctx(reason, pause_comment, now, written_tasks)
    ctes += [cte for h in hooks if h in SQL_HOOKS for cte in SQL_HOOKS[h](moved, ctx)]
    stmt: Select[Any] = select(moved.c.v1, moved.c.from_status, moved.c.run_type, moved.c.tenant_id).add_cte(
        *ctes, *also
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return await _refused(session, run_id, targets, allowed, attempt) if explain else Transition(False)
    if status in TERMINAL and row.from_status != status:
        m = get_metrics()
        m.runs_finished.labels(status.value, row.run_type, *tenant(m, row.tenant_id)).inc()
    done = Transition(True, RunStatus(row.from_status) if row.from_status else None, bool(row.v1))
    if Hook.V1_OUTPUT_DOCUMENTS in hooks and done.v1:
        approval = await v1_repo.store_outputs(session, run_id, outputs or {})
        await set_run_state(session, run_id, approval_state=approval, cause=cause, fields={"updated_at": now})
    return done


async def _refused(
    session: AsyncSession,
    run_id: uuid.UUID,
    targets: dict[StateAxis, str | None],
    allowed: dict[StateAxis, Collection[str | None] | None],
    attempt: int | None,
) -> Transition:
    """Why the guard refused the move, read from the run as it is now (only refused moves pay for it)."""
    row = (
        await session.execute(
            select(Run.status, Run.draft_state, Run.approval_state, Run.attempt).where(Run.id == run_id)
        )
    ).one_or_none()
    if row is None:
        return Transition(False, refusal=f"run {run_id} does not exist")
    stored = RunStatus(row.status)
    if attempt is not None and row.attempt != attempt:
        why = f"attempt {attempt} is over: the run is on attempt {row.attempt}"
    else:
        move = ", ".join(f"{a.value} to {to or 'none'}" for a, to in targets.items())
        now = {StateAxis.STATUS: row.status, StateAxis.DRAFT_STATE: row.draft_state}
        now[StateAxis.APPROVAL_STATE] = row.approval_state
        why = next(
            (
                f"{axis.value} is {now[axis] or 'none'}; moving {move} needs it to be one of "
                + ", ".join(sorted(s or "none" for s in states))
                for axis, states in allowed.items()
                if states is not None and now[axis] not in states
            ),
            # The guard saw another state than the one read now: a racing write moved it meanwhile.
            f"the run moved while moving {move} waited on it",
        )
    return Transition(False, refusal=why, stored_status=stored)


def _one_of(column: Any, states: Collection[str | None]) -> ColumnElement[bool]:
    named = sorted(s for s in states if s is not None)
    parts = [column.in_(named)] if named else []
    if None in states:
        parts.append(column.is_(None))
    return or_(*parts) if len(parts) > 1 else parts[0] if parts else literal(False)


@functools.cache
def _old_run() -> Any:
    # One alias for every move: SQLAlchemy memoizes an alias's adapted columns, and building a new
    # alias per statement cost ~3 ms of CPU per state write (most of a blocking run's terminal write).
    return aliased(Run, name="old")


def _moved(
    run_id: uuid.UUID,
    targets: dict[StateAxis, str | None],
    allowed: dict[StateAxis, Collection[str | None] | None],
    guards: list[ColumnElement[bool]],
    values: dict[str, Any],
) -> CTE:
    """The guarded UPDATE, returning each changed axis' value before the move.

    A state the guard pins to one value is known already; otherwise the row is read locked in the
    same statement (a plain self-join would report the snapshot's value, not the one moved from)."""
    unknown = [a for a in targets if len(allowed[a] or ()) != 1]
    before: dict[StateAxis, Any] = {}
    if unknown:
        old = _old_run()
        prior = (
            select(old.id, old.status, old.draft_state, old.approval_state)
            .where(old.id == run_id)
            # NO KEY: the lock an UPDATE of these columns takes anyway, so it waits on no foreign-key
            # check (a pause or task row being inserted) and deadlocks with none.
            .with_for_update(key_share=True)
            .subquery("prior")
        )
        guards = [*guards, Run.id == prior.c.id]
        before = {a: prior.c[a.value] for a in unknown}
    for axis in targets:
        if axis not in before:
            (pinned,) = allowed[axis] or (None,)
            before[axis] = literal(pinned, String)
    status_before = before.get(StateAxis.STATUS, literal(None, String))
    returned = [before[a].label(f"from_{a.value}") for a in targets if a != StateAxis.STATUS]
    return (
        update(Run)
        .where(*guards)
        .values(**values)
        .returning(
            Run.id,
            Run.tenant_id,
            Run.attempt,
            Run.v1,
            Run.run_type,
            status_before.label("from_status"),
            *returned,
        )
        .cte("moved")
    )


def _history(moved: CTE, targets: dict[StateAxis, str | None], cause: str, reason: str | None) -> CTE:
    rows = []
    for axis, to in targets.items():
        before = moved.c["from_status" if axis == StateAxis.STATUS else f"from_{axis.value}"]
        rows.append(
            select(
                moved.c.id,
                moved.c.tenant_id,
                moved.c.attempt,
                literal(axis.value, String),
                before,
                literal(to, String),
                literal(cause, String),
                literal(reason, Text),
            ).where(before.is_distinct_from(literal(to, String)))
        )
    columns = ["run_id", "tenant_id", "attempt", "axis", "from_state", "to_state", "cause", "reason"]
    return insert(RunStateHistory).from_select(columns, union_all(*rows)).cte("history")


@dataclass(frozen=True)
class _Ctx:
    reason: str | None
    pause_comment: str | None
    now: datetime
    written_tasks: Sequence[uuid.UUID]


def _cancel_unsettled_tasks(moved: CTE, ctx: _Ctx) -> list[CTE]:
    guards: list[ColumnElement[bool]] = [
        Task.run_id.in_(select(moved.c.id)),
        Task.status.not_in([s.value for s in SETTLED_TASKS]),
    ]
    if ctx.written_tasks:
        # Rows this statement writes itself cannot be updated twice by it.
        guards.append(Task.id != all_(literal(list(ctx.written_tasks), ARRAY(Uuid))))
    values = {"status": TaskStatus.CANCELED.value, "error": ctx.reason, "end_time": ctx.now}
    return [update(Task).where(*guards).values(**values).cte("canceled_tasks")]


def _close_open_pauses(moved: CTE, ctx: _Ctx) -> list[CTE]:
    comment = ctx.pause_comment or f"Closed: {ctx.reason}"
    return [
        update(Pause)
        .where(Pause.run_id.in_(select(moved.c.id)), Pause.resume_time.is_(None))
        .values(resume_time=ctx.now, comments=comment)
        .cte("closed_pauses")
    ]


def _approve_documents(moved: CTE, ctx: _Ctx) -> list[CTE]:
    return [
        update(Document)
        .where(Document.run_id.in_(select(moved.c.id)), Document.origin == DocumentOrigin.GENERATED.value)
        .values(approval_state=ApprovalState.APPROVED.value, updated_at=ctx.now)
        .cte("approved_documents")
    ]


def _drop_last_attempt(moved: CTE, _: _Ctx) -> list[CTE]:
    of_run = select(moved.c.id)
    return [
        delete(Task).where(Task.run_id.in_(of_run)).cte("dropped_tasks"),
        delete(Pause).where(Pause.run_id.in_(of_run)).cte("dropped_pauses"),
        delete(Document)
        .where(Document.run_id.in_(of_run), Document.origin == DocumentOrigin.GENERATED.value)
        .cte("dropped_outputs"),
    ]


SQL_HOOKS = {
    Hook.CANCEL_UNSETTLED_TASKS: _cancel_unsettled_tasks,
    Hook.CLOSE_OPEN_PAUSES: _close_open_pauses,
    Hook.V1_APPROVE_DOCUMENTS: _approve_documents,
    Hook.DROP_LAST_ATTEMPT: _drop_last_attempt,
}


CREATED = "Created"


async def record_created(session: AsyncSession, run: Run, *, cause: str, reason: str = CREATED) -> None:
    """The history rows of a new run (added to the session, not yet flushed): its first status, and
    its draft state if it is a v1 draft. `cause` is who created it."""
    await session.flush()  # the history row's foreign key needs the run's row
    await record_creation(
        session, run.id, run.tenant_id, run.attempt, run.status, run.draft_state, cause=cause, reason=reason
    )


async def record_creation(
    session: AsyncSession,
    run_id: uuid.UUID,
    tenant_id: uuid.UUID,
    attempt: int,
    status: str,
    draft_state: str | None,
    *,
    cause: str,
    reason: str = CREATED,
) -> None:
    """The history rows of a run just inserted: from nothing to its first status (and draft state)."""
    first = {StateAxis.STATUS: status, StateAxis.DRAFT_STATE: draft_state}
    rows = [
        {
            "run_id": run_id,
            "tenant_id": tenant_id,
            "attempt": attempt,
            "axis": axis.value,
            "from_state": None,
            "to_state": str(to),
            "cause": cause,
            "reason": reason,
        }
        for axis, to in first.items()
        if to is not None
    ]
    await session.execute(insert(RunStateHistory), rows)


async def history(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID
) -> list[RunStateHistory] | None:
    """The run's state changes, oldest first; None if the tenant has no such run."""
    if await session.scalar(select(Run.id).where(Run.id == run_id, Run.tenant_id == tenant_id)) is None:
        return None
    rows = await session.scalars(
        select(RunStateHistory).where(RunStateHistory.run_id == run_id).order_by(RunStateHistory.id)
    )
    return list(rows.all())
