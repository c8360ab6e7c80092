"""The run-state writer against the real PostgreSQL: the transition table, first terminal write wins,
the after-transition hooks, state history, and the CHECK constraints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import repo, run_state
from db.models import Document, Pause, Run, RunStateHistory, Task
from db.run_state import set_run_state
from db.session import make_engine, make_session_factory
from run_status import ApprovalState, Cause, DocumentOrigin, DraftState, PauseAction, RunStatus, TaskStatus
from tests.conftest import Stack, Tenant
from tests.db.conftest import make_run
from workflows.contracts import CreateChildRunInput, FinalizeInput, RecordDecisionInput, TaskRecord

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]


async def _history(db: Sessions, run_id: uuid.UUID) -> list[tuple[str, str | None, str | None, str]]:
    async with db() as session:
        rows = await session.execute(
            select(
                RunStateHistory.axis,
                RunStateHistory.from_state,
                RunStateHistory.to_state,
                RunStateHistory.cause,
            )
            .where(RunStateHistory.run_id == run_id)
            .order_by(RunStateHistory.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def _run(db: Sessions, run_id: uuid.UUID) -> Run:
    async with db() as session:
        run = await session.get(Run, run_id)
        assert run is not None
        return run


def _final(run_id: uuid.UUID, status: RunStatus, **kw: Any) -> FinalizeInput:
    return FinalizeInput(
        run_id=str(run_id),
        status=status,
        outputs=kw.pop("outputs", {}),
        tasks=[],
        end_time=datetime.now(UTC),
        **kw,
    )


async def test_an_illegal_transition_is_refused_and_writes_nothing(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, RunStatus.COMPLETED)
    async with db() as session, session.begin():
        moved = await repo.transition(session, run_id, RunStatus.RUNNING, cause=Cause.ENGINE, error="late")
    assert not moved.accepted
    run = await _run(db, run_id)
    assert (run.status, run.error) == ("COMPLETED", None)
    assert await _history(db, run_id) == []


async def test_the_first_terminal_write_wins(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, RunStatus.PAUSED)
    async with db() as session, session.begin():
        first = await repo.finalize(session, _final(run_id, RunStatus.FAILED, error="boom"))
    async with db() as session, session.begin():
        second = await repo.finalize(session, _final(run_id, RunStatus.COMPLETED))
    assert first == (True, RunStatus.FAILED)
    assert second == (False, RunStatus.FAILED)
    assert await _history(db, run_id) == [("status", "PAUSED", "FAILED", "engine")]


async def test_a_terminal_write_closes_open_pauses_and_cancels_unsettled_tasks(
    db: Sessions, tenant: Tenant
) -> None:
    run_id = await make_run(db, tenant, RunStatus.PAUSED)
    async with db() as session, session.begin():
        session.add(Pause(run_id=run_id, node_id="ask", seq=1))
        session.add(Task(run_id=run_id, node_id="ask", status=TaskStatus.PAUSED.value))
        session.add(Task(run_id=run_id, node_id="done", status=TaskStatus.COMPLETED.value))
    async with db() as session, session.begin():
        assert await repo.stop(session, run_id, "Stopped by user", cause=str(tenant.user_id))
    async with db() as session:
        pause = await session.scalar(select(Pause).where(Pause.run_id == run_id))
        tasks = dict(
            (await session.execute(select(Task.node_id, Task.status).where(Task.run_id == run_id))).all()
        )
    assert pause is not None and pause.resume_time is not None
    assert pause.comments == "Closed: Stopped by user"
    assert tasks == {"ask": "CANCELED", "done": "COMPLETED"}
    assert await _history(db, run_id) == [("status", "PAUSED", "CANCELED", str(tenant.user_id))]


async def test_the_engine_terminal_write_leaves_the_task_rows_it_writes(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, RunStatus.RUNNING)
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        await repo.record_progress(
            session, run_id, [TaskRecord(node_id="py1", seq=1, status="RUNNING", start_time=now)]
        )
        session.add(Task(run_id=run_id, node_id="stray", scope="x#0", status=TaskStatus.RUNNING.value))
    done = TaskRecord(
        node_id="py1", seq=1, status="COMPLETED", start_time=now, end_time=now, outputs={"y": 2}
    )
    async with db() as session, session.begin():
        recorded, _ = await repo.finalize(
            session,
            FinalizeInput(
                run_id=str(run_id),
                status=RunStatus.COMPLETED,
                outputs={"py1": {"y": 2}},
                tasks=[done],
                end_time=now,
            ),
        )
    assert recorded
    async with db() as session:
        tasks = dict(
            (await session.execute(select(Task.node_id, Task.status).where(Task.run_id == run_id))).all()
        )
    assert tasks == {"py1": "COMPLETED", "stray": "CANCELED"}


async def test_v1_output_documents_are_stored_only_for_v1_runs(db: Sessions, tenant: Tenant) -> None:
    v1_run = await make_run(db, tenant, v1=True, approval_required=True)
    plain = await make_run(db, tenant)
    outputs = {"output_node": {"y": 4}}
    for run_id in (v1_run, plain):
        async with db() as session, session.begin():
            await repo.finalize(session, _final(run_id, RunStatus.COMPLETED, outputs=outputs))
    async with db() as session:
        docs = (await session.execute(select(Document.run_id, Document.name, Document.approval_state))).all()
    assert [(d.name, d.approval_state) for d in docs if d.run_id == v1_run] == [
        ("output_node.json", "pending")
    ]
    assert [d for d in docs if d.run_id == plain] == []
    assert (await _run(db, v1_run)).approval_state == "pending"
    assert (await _run(db, plain)).approval_state == "not_required"
    assert await _history(db, v1_run) == [
        ("status", "RUNNING", "COMPLETED", "engine"),
        ("approval_state", "not_required", "pending", "engine"),
    ]
    assert await _history(db, plain) == [("status", "RUNNING", "COMPLETED", "engine")]


async def test_approving_a_run_approves_its_output_documents_once(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, v1=True, approval_required=True)
    async with db() as session, session.begin():
        await repo.finalize(session, _final(run_id, RunStatus.COMPLETED, outputs={"output_node": {"y": 1}}))
    who = str(tenant.user_id)
    async with db() as session, session.begin():
        assert await repo.approve(session, run_id, "looks right", cause=who)
    async with db() as session, session.begin():
        assert not await repo.approve(session, run_id, "again", cause=who)
    async with db() as session:
        states = (
            await session.scalars(select(Document.approval_state).where(Document.run_id == run_id))
        ).all()
    assert states == ["approved"]
    assert (await _run(db, run_id)).approval_reason == "looks right"
    assert (await _history(db, run_id))[-1] == ("approval_state", "pending", "approved", who)


async def test_a_draft_records_every_state_it_passes_through(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, RunStatus.PENDING, v1=True, draft_state=DraftState.NOT_STARTED.value)
    who = str(tenant.user_id)
    async with db() as session, session.begin():
        assert await repo.set_draft_state(session, run_id, "NOT_STARTED", "PENDING")
        assert not await repo.set_draft_state(session, run_id, "NOT_STARTED", "PENDING")  # moved already
        assert await repo.set_draft_state(session, run_id, "PENDING", "NOT_STARTED")
        assert await repo.dispatch_draft(session, run_id, ["NOT_STARTED"], cause=who)
        assert await repo.stop(session, run_id, "Stopped by user", cause=who)
        assert await repo.rearm(session, run_id, to_draft=True, cause=who, reason="Retried")
    assert await _history(db, run_id) == [
        ("draft_state", "NOT_STARTED", "PENDING", "engine"),
        ("draft_state", "PENDING", "NOT_STARTED", "engine"),
        ("draft_state", "NOT_STARTED", None, who),
        ("status", "PENDING", "CANCELED", who),
        ("status", "CANCELED", "PENDING", who),
        ("draft_state", None, "NOT_STARTED", who),
    ]
    run = await _run(db, run_id)
    assert (run.status, run.draft_state, run.attempt) == ("PENDING", "NOT_STARTED", 2)


async def test_a_rearm_drops_the_last_attempts_rows_but_not_its_history(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, v1=True)
    async with db() as session, session.begin():
        session.add(Task(run_id=run_id, node_id="py1", status=TaskStatus.RUNNING.value))
    async with db() as session, session.begin():
        await repo.finalize(session, _final(run_id, RunStatus.FAILED, error="boom"))
        assert await repo.rearm(session, run_id, to_draft=False, cause=Cause.SCHEDULE, reason="Retried")
    async with db() as session:
        assert (await session.scalars(select(Task).where(Task.run_id == run_id))).all() == []
    assert [h[1:] for h in await _history(db, run_id)] == [
        ("RUNNING", "FAILED", "engine"),
        ("FAILED", "PENDING", "schedule"),
    ]


async def test_engine_progress_moves_a_pending_run_once(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, RunStatus.PENDING)
    rec = TaskRecord(node_id="py1", seq=1, status="RUNNING", start_time=datetime.now(UTC))
    for _ in range(2):
        async with db() as session, session.begin():
            await repo.record_progress(session, run_id, [rec])
    assert await _history(db, run_id) == [("status", "PENDING", "RUNNING", "engine")]
    assert (await _run(db, run_id)).status == "RUNNING"


async def test_a_progress_write_after_the_terminal_write_adds_no_task_rows(
    db: Sessions, tenant: Tenant
) -> None:
    # The reconciler ends a run whose execution was terminated while its activity still ran; the
    # activity's progress write lands afterwards and must not leave a RUNNING task on a CANCELED run.
    run_id = await make_run(db, tenant, RunStatus.PENDING)
    async with db() as session, session.begin():
        await repo.finalize(session, _final(run_id, RunStatus.CANCELED, error="Terminated in Temporal"))
    rec = TaskRecord(node_id="py1", seq=1, status="RUNNING", start_time=datetime.now(UTC))
    async with db() as session, session.begin():
        await repo.record_progress(session, run_id, [rec])
    async with db() as session:
        assert (await session.scalars(select(Task).where(Task.run_id == run_id))).all() == []
    assert (await _run(db, run_id)).status == "CANCELED"


async def test_a_write_fenced_to_an_earlier_attempt_changes_nothing(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, attempt=2)
    async with db() as session, session.begin():
        moved = await set_run_state(session, run_id, status=RunStatus.CANCELED, attempt=1, cause=Cause.ENGINE)
    assert not moved.accepted
    assert (await _run(db, run_id)).status == "RUNNING"


@pytest.mark.parametrize(
    "table, column, value",
    [
        ("runs", "status", "DONE"),
        ("runs", "draft_state", "STARTED"),
        ("runs", "approval_state", "APPROVED"),
        ("tasks", "status", "SKIPPED"),
        ("documents", "origin", "UPLOADED"),
        ("documents", "ingest_status", "DONE"),
        ("documents", "approval_state", "maybe"),
    ],
)
async def test_check_constraints_refuse_unknown_states(
    db: Sessions, tenant: Tenant, table: str, column: str, value: str
) -> None:
    run_id = await make_run(db, tenant)
    async with db() as session, session.begin():
        session.add(Task(run_id=run_id, node_id="py1", status=TaskStatus.RUNNING.value))
        session.add(
            Document(
                tenant_id=tenant.tenant_id,
                parent_path_part_id=uuid.uuid4(),
                materialized_path="/x",
                run_id=run_id,
                name="x",
                media_type="text/plain",
                origin=DocumentOrigin.SOURCE.value,
                approval_state=ApprovalState.NOT_REQUIRED.value,
            )
        )
    key = "id" if table == "runs" else "run_id"
    with pytest.raises(IntegrityError, match=f"ck_{table}_{column}"):
        async with db() as session, session.begin():
            await session.execute(
                text(f"UPDATE {table} SET {column} = :v WHERE {key} = :r"), {"v": value, "r": run_id}
            )


async def test_a_deleted_run_takes_its_history_with_it(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant)
    async with db() as session, session.begin():
        await repo.transition(session, run_id, RunStatus.PAUSED, cause=Cause.ENGINE)
        await session.execute(update(Run).where(Run.id == run_id).values(name=None))
        await session.delete(await session.get(Run, run_id))
    assert await _history(db, run_id) == []


async def test_the_engines_terminal_write_of_a_workflow_api_run_is_one_statement(
    stack: Stack, tenant: Tenant
) -> None:
    db = make_session_factory(make_engine(stack.database_url, pool_size=1))
    run_id = await make_run(db, tenant)
    statements: list[str] = []
    engine = db.kw["bind"]
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        async with db() as session, session.begin():
            assert (await repo.finalize(session, _final(run_id, RunStatus.COMPLETED)))[0]
    finally:
        await engine.dispose()
    # The move, its history row and the hooks; no v1 query for a run that is not v1.
    assert [s for s in statements if not s.startswith(("BEGIN", "COMMIT"))] == [statements[0]]
    assert statements[0].lstrip().startswith("WITH moved AS")


async def test_a_refused_move_says_why_and_what_the_run_is_now(db: Sessions, tenant: Tenant) -> None:
    done = await make_run(db, tenant, RunStatus.COMPLETED)
    later = await make_run(db, tenant, attempt=2)
    started = await make_run(db, tenant, RunStatus.RUNNING, v1=True)
    async with db() as session, session.begin():
        late = await repo.transition(session, done, RunStatus.RUNNING, cause=Cause.ENGINE)
        fenced = await set_run_state(session, later, status=RunStatus.CANCELED, attempt=1, cause=Cause.ENGINE)
        again = await repo.dispatch_draft(session, started, ["NOT_STARTED"], cause=Cause.ENGINE)
        gone = await repo.stop(session, uuid.uuid4(), "Stopped by user", cause=Cause.ENGINE)
    assert not late and late.stored_status == RunStatus.COMPLETED
    assert (
        late.refusal == "status is COMPLETED; moving status to RUNNING needs it to be one of PAUSED, PENDING"
    )
    assert fenced.refusal == "attempt 1 is over: the run is on attempt 2"
    assert again.refusal == "status is RUNNING; moving draft_state to none needs it to be one of PENDING"
    assert again.stored_status == RunStatus.RUNNING
    assert gone.refusal is not None and gone.refusal.endswith("does not exist")
    assert gone.stored_status is None


async def test_an_accepted_move_carries_no_refusal(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, RunStatus.RUNNING)
    async with db() as session, session.begin():
        moved = await repo.transition(session, run_id, RunStatus.PAUSED, cause=Cause.ENGINE)
    assert moved and moved.refusal is None and moved.from_status == RunStatus.RUNNING


async def test_creating_a_run_records_who_created_it(db: Sessions, tenant: Tenant) -> None:
    parent = await make_run(db, tenant)
    who = str(tenant.user_id)
    async with db() as session, session.begin():
        wf_id = (await _run(db, parent)).workflow_id
        draft = Run(
            tenant_id=tenant.tenant_id,
            workflow_id=wf_id,
            status=RunStatus.PENDING.value,
            v1=True,
            draft_state=DraftState.NOT_STARTED.value,
        )
        session.add(draft)
        await run_state.record_created(session, draft, cause=who)
    assert await _history(db, draft.id) == [
        ("status", None, "PENDING", who),
        ("draft_state", None, "NOT_STARTED", who),
    ]
    child = CreateChildRunInput(
        run_id=str(uuid.uuid4()),
        parent_run_id=str(parent),
        tenant_id=str(tenant.tenant_id),
        workflow_id=str(wf_id),
        version_id=None,
        initial_inputs={},
        start_time=datetime.now(UTC),
    )
    for _ in range(2):  # a retried activity creates the row and its history once
        async with db() as session, session.begin():
            await repo.create_child_run(session, child)
    assert await _history(db, uuid.UUID(child.run_id)) == [("status", None, "PENDING", "engine")]


def _decision(run_id: uuid.UUID, seq: int, *, attempt: int | None = None, **kw: Any) -> RecordDecisionInput:
    now = datetime.now(UTC)
    return RecordDecisionInput(
        run_id=str(run_id),
        attempt=attempt,
        seq=seq,
        action=PauseAction.APPROVE,
        user_id="ann",
        comments=None,
        inputs={},
        resume_time=now,
        tasks=[TaskRecord(node_id=f"ask{seq}", seq=seq, status="COMPLETED", start_time=now, end_time=now)],
        still_paused=kw.pop("still_paused", False),
    )


async def _pauses_and_tasks(db: Sessions, run_id: uuid.UUID) -> tuple[dict[int, str | None], dict[str, str]]:
    async with db() as session:
        pauses = dict(
            (
                await session.execute(select(Pause.seq, Pause.resume_user_id).where(Pause.run_id == run_id))
            ).all()
        )
        tasks = dict(
            (await session.execute(select(Task.node_id, Task.status).where(Task.run_id == run_id))).all()
        )
    return pauses, tasks


async def test_a_decision_resumes_the_run_only_when_no_other_pause_is_open(
    db: Sessions, tenant: Tenant
) -> None:
    run_id = await make_run(db, tenant, RunStatus.PAUSED)
    async with db() as session, session.begin():
        session.add_all(
            [Pause(run_id=run_id, node_id="ask1", seq=1), Pause(run_id=run_id, node_id="ask2", seq=2)]
        )
    async with db() as session, session.begin():
        await repo.record_decision(session, _decision(run_id, 1))
    assert (await _run(db, run_id)).status == "PAUSED"
    assert await _pauses_and_tasks(db, run_id) == ({1: "ann", 2: None}, {"ask1": "COMPLETED"})
    async with db() as session, session.begin():
        await repo.record_decision(session, _decision(run_id, 2))
    assert (await _run(db, run_id)).status == "RUNNING"
    assert await _pauses_and_tasks(db, run_id) == (
        {1: "ann", 2: "ann"},
        {"ask1": "COMPLETED", "ask2": "COMPLETED"},
    )
    assert await _history(db, run_id) == [("status", "PAUSED", "RUNNING", "engine")]


async def test_a_decision_the_workflow_says_is_not_the_last_keeps_the_run_paused(
    db: Sessions, tenant: Tenant
) -> None:
    run_id = await make_run(db, tenant, RunStatus.PAUSED)
    async with db() as session, session.begin():
        session.add(Pause(run_id=run_id, node_id="ask1", seq=1))
    async with db() as session, session.begin():
        await repo.record_decision(session, _decision(run_id, 1, still_paused=True))
    assert (await _run(db, run_id)).status == "PAUSED"
    assert await _pauses_and_tasks(db, run_id) == ({1: "ann"}, {"ask1": "COMPLETED"})


async def test_a_decision_written_by_an_earlier_attempt_changes_nothing(db: Sessions, tenant: Tenant) -> None:
    run_id = await make_run(db, tenant, RunStatus.PAUSED, attempt=2)
    async with db() as session, session.begin():
        session.add(Pause(run_id=run_id, node_id="ask1", seq=1))
    async with db() as session, session.begin():
        await repo.record_decision(session, _decision(run_id, 1, attempt=1))
    assert (await _run(db, run_id)).status == "PAUSED"
    assert await _pauses_and_tasks(db, run_id) == ({1: None}, {})
    async with db() as session, session.begin():
        await repo.record_decision(session, _decision(run_id, 1, attempt=2))
    assert (await _run(db, run_id)).status == "RUNNING"
