"""v1 run rules (the ksapi 3.18.2 state-by-operation table): drafts, start, stop, retry, resume, clone,
approval, callback, lists and the summary. Status changes go through `db.repo`; Temporal starts
through `run_service.start_execution`."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, nulls_last, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from api import run_service
from api import v1_service as svc
from api.v1_definition_service import get_definition
from api.v1_dispatch import InputProblem, again, check_inputs, dispatch
from db import repo
from db import v1_repo as v1
from db.accounts import Principal
from db.models import Document, Folder, Run, Task, V1Definition, Workflow, utcnow
from errors import BadRequest, Conflict, Forbidden, InvalidInput, NotFound
from run_status import RunStatus, TaskStatus
from settings import Settings
from workflows import search_attributes as sa
from workflows.schema import FinalizeInput

log = logging.getLogger(__name__)
STOPPED = "Stopped by user"


@dataclass
class CreateRunForm:
    name: str | None = None
    input_scope: str | None = None
    idempotency_key: str | None = None
    auto_start: bool | None = None
    user_message: str | None = None
    selected_skill_ids: str | None = None


async def get_run(session: AsyncSession, who: Principal, run_id: uuid.UUID, *, lock: bool = False) -> Run:
    q = select(Run).where(Run.id == run_id, Run.tenant_id == who.tenant_id)
    if lock:
        q = q.with_for_update()
    run = await session.scalar(q.execution_options(populate_existing=True))
    if run is None:
        raise NotFound("Workflow run not found")
    return run


def state_of(run: Run) -> str:
    return v1.execution_state(run.status, run.draft_state)


def _json_ids(raw: str | None, field: str) -> list[uuid.UUID] | None:
    if raw is None or raw == "":
        return None
    try:
        values = json.loads(raw)
        if not isinstance(values, list):
            raise ValueError
        return [uuid.UUID(str(v)) for v in values]
    except (ValueError, TypeError):
        raise InvalidInput(f"{field} must be a JSON array of UUIDs") from None


async def _check_scope(session: AsyncSession, who: Principal, ids: list[uuid.UUID]) -> list[str]:
    """Every id must be a document (or version) or folder of the caller's tenant."""
    if len(ids) > 200:
        raise InvalidInput("input_scope holds at most 200 ids")
    for pp in ids:
        doc = await session.scalar(
            select(Document.id).where(
                Document.tenant_id == who.tenant_id,
                (Document.path_part_id == pp) | (Document.version_path_part_id == pp),
            )
        )
        folder = await session.scalar(
            select(Folder.id).where(Folder.tenant_id == who.tenant_id, Folder.path_part_id == pp)
        )
        if doc is None and folder is None:
            raise BadRequest(f"input_scope: {pp} is not a document or folder you can read")
    return [str(i) for i in ids]


async def _name_taken(
    session: AsyncSession, workflow_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> bool:
    q = select(Run.id).where(Run.workflow_id == workflow_id, Run.name == name)
    if exclude is not None:
        q = q.where(Run.id != exclude)
    return (await session.scalar(q)) is not None


async def create_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    definition_id: uuid.UUID,
    form: CreateRunForm,
    files: list[tuple[str, bytes, str | None]],
) -> Run:
    """A NOT_STARTED draft (PENDING while `files` are ingested), with its inputs/outputs/discussions folders.

    Raises:
        NotFound: unknown definition. Conflict: a template, a taken name.
        InvalidInput / BadRequest: malformed or unreadable `input_scope` / `selected_skill_ids`.
    """
    wf, d = await get_definition(session, who, definition_id)
    if d.is_template:
        raise Conflict("Templates cannot have runs; instantiate the template first")
    if form.idempotency_key:
        existing = await session.scalar(
            select(Run).where(
                Run.workflow_id == wf.id,
                Run.triggered_by == who.user_id,
                Run.idempotency_key == form.idempotency_key,
            )
        )
        if existing is not None:
            return existing
    scope_ids = _json_ids(form.input_scope, "input_scope")
    scope = await _check_scope(session, who, scope_ids) if scope_ids is not None else None
    skills = _json_ids(form.selected_skill_ids, "selected_skill_ids")
    if skills:
        raise BadRequest("selected_skill_ids: no such skills (this service has no skills)")
    if form.name is not None and await _name_taken(session, wf.id, form.name):
        raise Conflict(f"A run named '{form.name}' already exists for this workflow")
    run_id = uuid.uuid4()
    now = utcnow()
    run = Run(
        id=run_id,
        tenant_id=who.tenant_id,
        workflow_id=wf.id,
        triggered_by=who.user_id,
        status=RunStatus.PENDING.value,
        v1=True,
        name=form.name,
        path_part_id=uuid.uuid4(),
        draft_state=v1.PENDING if files else v1.NOT_STARTED,
        auto_start=bool(form.auto_start),
        auto_start_user_message=form.user_message or None,
        input_scope=scope,
        idempotency_key=form.idempotency_key,
        start_time=now,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        if form.idempotency_key:  # a racing create with the same key won
            again_ = await session.scalar(
                select(Run).where(Run.workflow_id == wf.id, Run.idempotency_key == form.idempotency_key)
            )
            if again_ is not None:
                return again_
        raise Conflict(f"A run named '{form.name}' already exists for this workflow") from None
    _, def_path = await _definition_path(session, d, wf)
    run_path = v1.child_path(def_path, form.name or str(run_id))
    made: dict[str, Folder] = {}
    for role in ("inputs", "outputs", "discussions"):
        made[role] = Folder(
            tenant_id=who.tenant_id,
            parent_path_part_id=run.path_part_id,
            name=role,
            materialized_path=v1.child_path(run_path, role),
            system_managed=True,
            run_id=run_id,
            role=role,
            owner_id=who.user_id,
        )
        session.add(made[role])
    await session.flush()
    docs = [
        await svc.create_upload(session, who, made["inputs"], name, content, ctype)
        for name, content, ctype in files
    ]
    await session.commit()
    for doc in docs:
        await svc.start_ingestion(client, settings, doc)
    return run


async def _definition_path(session: AsyncSession, d: V1Definition, wf: Workflow) -> tuple[uuid.UUID, str]:
    parent = await session.scalar(
        select(Folder.materialized_path).where(Folder.path_part_id == d.parent_path_part_id)
    )
    return d.path_part_id, v1.child_path(parent or "/", wf.name)


async def _launch(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    run: Run,
    user_message: str | None,
    from_: list[str],
    eager: bool,
) -> None:
    dispatched = await dispatch(session, run, settings, user_message, from_)
    if dispatched is None:
        return
    run_input, timeout = dispatched
    wf = await session.get(Workflow, run.workflow_id)
    assert wf is not None
    await run_service.start_execution(
        session, client, settings, run, wf, "RunWorkflow", run_input, eager=eager, execution_timeout=timeout
    )


async def start_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    run_id: uuid.UUID,
    user_message: str | None,
    eager: bool,
) -> Run:
    """NOT_STARTED → IN_PROGRESS (idempotent on IN_PROGRESS).

    Raises:
        Conflict: terminal, inputs still ingesting, or an input failed ingestion.
    """
    run = await get_run(session, who, run_id)
    run_service.ensure_can_mutate(who, run)
    state = state_of(run)
    if state == v1.IN_PROGRESS:
        return run
    if state == v1.PENDING:
        raise Conflict("The run's inputs are still being ingested")
    if state != v1.NOT_STARTED:
        raise Conflict(f"The run is {state}; use retry or resume for a failed run, clone for a completed one")
    try:
        await check_inputs(session, run)
    except InputProblem as err:
        raise Conflict(str(err)) from None
    await _launch(session, client, settings, run, user_message, [v1.NOT_STARTED], eager)
    run = await get_run(session, who, run_id)
    if state_of(run) not in (v1.IN_PROGRESS, v1.COMPLETED, v1.FAILED):
        raise Conflict(f"The run is {state_of(run)}")
    return run


async def update_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    run_id: uuid.UUID,
    body: Any,
    eager: bool,
) -> Run:
    """Edit a draft: name, input_scope, auto_start, user_message. Arming auto_start on a NOT_STARTED
    run dispatches it at once; on a PENDING run it starts when the uploads settle.

    Raises:
        BadRequest: no field set. Forbidden: not the triggerer or an owner/admin.
        Conflict: the run is not a draft; the name is taken.
    """
    fields = body.model_dump(exclude_none=True)
    if not fields:
        raise BadRequest("Set at least one of input_scope, name, auto_start, user_message")
    run = await get_run(session, who, run_id, lock=True)
    run_service.ensure_can_mutate(who, run)
    if run.draft_state is None:
        raise Conflict(f"The run is {state_of(run)}; only NOT_STARTED or PENDING runs can be edited")
    values: dict[str, Any] = {"updated_at": utcnow()}
    if body.name is not None:
        if await _name_taken(session, run.workflow_id, body.name, exclude=run.id):
            raise Conflict(f"A run named '{body.name}' already exists for this workflow")
        values["name"] = body.name
    if body.input_scope is not None:
        values["input_scope"] = await _check_scope(session, who, body.input_scope)
    if body.auto_start is not None:
        values["auto_start"] = body.auto_start
    if body.user_message is not None:
        values["auto_start_user_message"] = body.user_message or None
    await session.execute(update(Run).where(Run.id == run.id).values(**values))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"A run named '{body.name}' already exists for this workflow") from None
    run = await get_run(session, who, run_id)
    if body.auto_start and run.draft_state == v1.NOT_STARTED:
        try:
            await check_inputs(session, run)
        except InputProblem as err:
            raise Conflict(str(err)) from None
        await _launch(session, client, settings, run, None, [v1.NOT_STARTED], eager)
        run = await get_run(session, who, run_id)
    return run


async def delete_run(session: AsyncSession, who: Principal, run_id: uuid.UUID) -> None:
    run = await get_run(session, who, run_id)
    run_service.ensure_can_mutate(who, run)
    if state_of(run) == v1.IN_PROGRESS:
        raise Conflict("The run is in progress; stop it first")
    await session.delete(run)
    await session.commit()


async def _cancel_execution(client: Client, run_id: uuid.UUID) -> None:
    """Best effort: the stored state is already final; a worker that is away gets the cancel later."""
    handle = client.get_workflow_handle(sa.temporal_workflow_id(str(run_id)))
    try:
        await asyncio.wait_for(handle.cancel(), 5.0)
    except (RPCError, TimeoutError) as err:
        log.info("cancel of run %s not delivered: %s", run_id, err)


async def stop_run(session: AsyncSession, client: Client, who: Principal, run_id: uuid.UUID) -> Run:
    """IN_PROGRESS → FAILED ("Stopped by user"); any other state is returned unchanged."""
    run = await get_run(session, who, run_id)
    run_service.ensure_can_mutate(who, run)
    if state_of(run) != v1.IN_PROGRESS:
        return run
    stopped = await repo.stop(session, run.id, STOPPED)
    await session.commit()
    if stopped:
        await _cancel_execution(client, run.id)
    return await get_run(session, who, run_id)


async def retry_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    run_id: uuid.UUID,
    *,
    warm: bool,
    eager: bool,
) -> Run:
    """FAILED → IN_PROGRESS against the pinned snapshot (a never-started FAILED run re-arms as a draft).

    `warm` (resume) reuses the outputs of nodes that completed.

    Raises:
        Conflict: the run is not FAILED.
    """
    run = await get_run(session, who, run_id)
    run_service.ensure_can_mutate(who, run)
    if state_of(run) != v1.FAILED:
        raise Conflict(f"The run is {state_of(run)}; only FAILED runs can be retried or resumed")
    started = run.snapshot is not None and run.workflow_version_id is not None
    precomputed = await _completed_outputs(session, run.id) if warm and started else {}
    if not await repo.rearm(session, run.id, to_draft=not started):
        await session.rollback()
        raise Conflict("The run changed meanwhile; read it again")
    await session.commit()
    run = await get_run(session, who, run_id)
    if started:
        run_input, timeout = await again(session, run, settings)
        run_input = run_input.model_copy(update={"precomputed": precomputed})
        wf = await session.get(Workflow, run.workflow_id)
        assert wf is not None
        await run_service.start_execution(
            session,
            client,
            settings,
            run,
            wf,
            "RunWorkflow",
            run_input,
            eager=eager,
            execution_timeout=timeout,
            restart=True,
        )
        run = await get_run(session, who, run_id)
    return run


async def _completed_outputs(session: AsyncSession, run_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    rows = await session.execute(
        select(Task.node_id, Task.outputs).where(
            Task.run_id == run_id, Task.scope == "", Task.status == TaskStatus.COMPLETED.value
        )
    )
    return {node_id: dict(outputs) for node_id, outputs in rows.all() if outputs is not None}


async def clone_run(session: AsyncSession, who: Principal, run_id: uuid.UUID, include_inputs: bool) -> Run:
    """A new NOT_STARTED draft of the same definition; with `include_inputs`, the source snapshot's
    inputs become its input scope. Raises Conflict for a source that never started."""
    source = await get_run(session, who, run_id)
    if source.snapshot is None or source.draft_state is not None:
        raise Conflict("Only a run that has started (and so has a snapshot) can be cloned")
    wf, d = await get_definition(session, who, source.workflow_id)
    if d.is_template:
        raise Conflict("Templates cannot have runs")
    scope = [str(i["path_part_id"]) for i in source.snapshot.get("inputs", [])] if include_inputs else []
    new_id = uuid.uuid4()
    now = utcnow()
    run = Run(
        id=new_id,
        tenant_id=who.tenant_id,
        workflow_id=wf.id,
        triggered_by=who.user_id,
        status=RunStatus.PENDING.value,
        v1=True,
        path_part_id=uuid.uuid4(),
        draft_state=v1.NOT_STARTED,
        input_scope=scope,
        start_time=now,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    _, def_path = await _definition_path(session, d, wf)
    for role in ("inputs", "outputs", "discussions"):
        session.add(
            Folder(
                tenant_id=who.tenant_id,
                parent_path_part_id=run.path_part_id,
                name=role,
                materialized_path=v1.child_path(v1.child_path(def_path, str(new_id)), role),
                system_managed=True,
                run_id=new_id,
                role=role,
                owner_id=who.user_id,
            )
        )
    await session.commit()
    return run


async def set_approval(session: AsyncSession, who: Principal, run_id: uuid.UUID, reason: str | None) -> Run:
    """Approve a COMPLETED run of a definition with `approval_required`: every output document, then the run.

    Raises:
        Forbidden: the caller may not approve (owners and admins may). Conflict: not COMPLETED, or
        the definition does not require approval.
    """
    run = await get_run(session, who, run_id, lock=True)
    if not svc.is_admin(who):
        raise Forbidden("Only an owner or admin may approve runs")
    if state_of(run) != v1.COMPLETED:
        raise Conflict(f"The run is {state_of(run)}; only COMPLETED runs can be approved")
    required = await session.scalar(
        select(V1Definition.approval_required).where(V1Definition.workflow_id == run.workflow_id)
    )
    if not required:
        raise Conflict("This workflow does not require approval")
    if run.approval_state == "approved":
        return run
    now = utcnow()
    await session.execute(
        update(Document)
        .where(Document.run_id == run.id, Document.origin == "GENERATED")
        .values(approval_state="approved", updated_at=now)
    )
    await session.execute(
        update(Run)
        .where(Run.id == run.id)
        .values(approval_state="approved", approval_reason=reason, approved_at=now, updated_at=now)
    )
    await session.commit()
    return await get_run(session, who, run_id)


async def callback(
    session: AsyncSession, client: Client, who: Principal, run_id: uuid.UUID, status: str, error: str | None
) -> str:
    """The runner's terminal write, through the same idempotent path as the run's own (`repo.finalize`).

    Returns "accepted", or "already_terminal" when a terminal state was stored first.

    Raises:
        Conflict: the run has not started.
    """
    run = await get_run(session, who, run_id)
    run_service.ensure_can_mutate(who, run)
    state = state_of(run)
    if state in (v1.COMPLETED, v1.FAILED):
        return "already_terminal"
    if state != v1.IN_PROGRESS:
        raise Conflict(f"The run is {state}; it has not started")
    target = RunStatus(status)
    recorded, _ = await repo.finalize(
        session,
        FinalizeInput(
            run_id=str(run.id),
            status=target,
            outputs={},
            tasks=[],
            error=(error or "Run failed") if target == RunStatus.FAILED else error,
            end_time=utcnow(),
        ),
    )
    if recorded:
        await repo.cancel_unsettled_tasks(session, run.id, f"Run {target.value} by callback")
    await session.commit()
    if not recorded:
        return "already_terminal"
    await _cancel_execution(client, run.id)
    return "accepted"


# -- lists and summary ---------------------------------------------------------------------------------


@dataclass
class RunFilters:
    states: list[str] | None = None
    mine: bool | None = None
    approvable_by_me: bool | None = None
    definition_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    sort_by: str = "STARTED_AT"
    sort_dir: str | None = None
    limit: int = 20
    offset: int = 0
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    approval_states: list[str] | None = None
    include_tag_ids: list[uuid.UUID] | None = None


def _filtered(who: Principal, f: RunFilters) -> Select[Run]:
    q = select(Run).where(Run.tenant_id == who.tenant_id)
    if f.states:
        q = q.where(v1.execution_state_sql().in_(f.states))
    if f.mine:
        q = q.where(Run.triggered_by == who.user_id)
    elif f.owner_id is not None:
        q = q.where(Run.triggered_by == f.owner_id)
    if f.approvable_by_me:
        q = q.where(Run.approval_state == "pending") if svc.is_admin(who) else q.where(Run.id.is_(None))
    if f.definition_id is not None:
        q = q.where(Run.workflow_id == f.definition_id)
    if f.approval_states:
        q = q.where(Run.approval_state.in_(f.approval_states))
    if f.include_tag_ids:
        q = q.where(Run.id.is_(None))  # nothing is tagged
    for column, after, before in (
        (Run.created_at, f.created_after, f.created_before),
        (Run.updated_at, f.updated_after, f.updated_before),
    ):
        if after is not None:
            q = q.where(column >= after)
        if before is not None:
            q = q.where(column < before)
    return q


async def list_runs(session: AsyncSession, who: Principal, f: RunFilters) -> tuple[list[Run], int]:
    q = _filtered(who, f)
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    started_at = case((Run.draft_state.is_(None), Run.start_time), else_=None)
    column = {"CREATED_AT": Run.created_at, "COMPLETED_AT": Run.end_time}.get(f.sort_by, started_at)
    desc = (f.sort_dir or "DESC") == "DESC"
    order = nulls_last(column.desc() if desc else column.asc())
    rows = await session.scalars(
        q.order_by(order, Run.created_at.desc(), Run.id).limit(f.limit).offset(f.offset)
    )
    return list(rows.all()), total


async def summary(
    session: AsyncSession,
    who: Principal,
    since: datetime | None,
    until: datetime | None,
    definition_id: uuid.UUID | None,
) -> dict[str, Any]:
    """Aggregates over runs created in the window (default: the last 7 days), computed in SQL."""
    now = utcnow()
    start = since or now - timedelta(days=7)
    window = [Run.tenant_id == who.tenant_id, Run.created_at >= start]
    if until is not None:
        window.append(Run.created_at < until)
    if definition_id is not None:
        window.append(Run.workflow_id == definition_id)
    state = v1.execution_state_sql()
    counts = dict.fromkeys(v1.EXECUTION_STATES, 0)
    for name, n in (await session.execute(select(state, func.count()).where(*window).group_by(state))).all():
        counts[name] = int(n)
    seconds = func.extract("epoch", Run.end_time - Run.start_time)
    p50, p95, total, triggerers = (
        await session.execute(
            select(
                func.percentile_cont(0.5).within_group(seconds).filter(state.in_([v1.COMPLETED, v1.FAILED])),
                func.percentile_cont(0.95).within_group(seconds).filter(state.in_([v1.COMPLETED, v1.FAILED])),
                func.count(),
                func.count(func.distinct(Run.triggered_by)),
            ).where(*window)
        )
    ).one()
    terminal = counts[v1.COMPLETED] + counts[v1.FAILED]
    pq = select(func.count(), func.min(Run.end_time)).where(
        Run.tenant_id == who.tenant_id, Run.approval_state == "pending"
    )
    if definition_id is not None:
        pq = pq.where(Run.workflow_id == definition_id)
    pending, oldest = (await session.execute(pq)).one()
    active = await session.scalar(
        select(func.count())
        .select_from(Workflow)
        .outerjoin(V1Definition, V1Definition.workflow_id == Workflow.id)
        .where(
            Workflow.tenant_id == who.tenant_id,
            func.coalesce(V1Definition.is_active, True).is_(True),
            func.coalesce(V1Definition.is_template, False).is_(False),
        )
    )
    return {
        "window_start": start,
        "window_end": until,
        "total": int(total),
        "counts_by_state": counts,
        "failure_rate": counts[v1.FAILED] / terminal if terminal else None,
        "duration_p50_seconds": float(p50) if p50 is not None else None,
        "duration_p95_seconds": float(p95) if p95 is not None else None,
        "pending_approval_count": int(pending or 0),
        "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest is not None else None,
        "adoption": {
            "runs": int(total),
            "active_definitions": int(active or 0),
            "distinct_triggerers": int(triggerers),
        },
    }
