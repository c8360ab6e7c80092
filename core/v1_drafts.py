"""v1 drafts: create (multipart or empty), PATCH, clone and delete; a draft is a PENDING `runs` row
with a `draft_state`, its inputs/outputs/discussions folders made with it."""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from core import access, v1_resources
from core.v1_definitions import get_definition
from core.v1_dispatch import check_runnable
from core.v1_runs import get_run, launch, may
from db import repo, run_state, v1_draft_repo
from db import v1_repo as v1
from db.accounts import Principal
from db.models import Document, Folder, Run, V1Definition, Workflow, utcnow
from errors import BadRequest, Conflict, InvalidInput, NotFound, Unavailable
from run_status import Cause, DocumentOrigin, DraftState, IngestStatus, RunStatus, V1Operation
from settings import Settings


@dataclass
class CreateRunForm:
    name: str | None = None
    input_scope: str | None = None
    idempotency_key: str | None = None
    auto_start: bool | None = None
    user_message: str | None = None
    selected_skill_ids: str | None = None


@dataclass(frozen=True)
class RunEdit:
    """A draft's editable fields (PATCH): None leaves a field as it is."""

    name: str | None = None
    input_scope: list[uuid.UUID] | None = None
    auto_start: bool | None = None
    user_message: str | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.name, self.input_scope, self.auto_start, self.user_message))


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
    readable = await v1_draft_repo.readable_scope(session, who.tenant_id, ids)
    for pp in ids:
        if pp not in readable:
            # 404 as for any other id of another tenant (or none): the caller learns nothing about it.
            raise NotFound(f"input_scope: {pp} is not a document or folder you can read")
    return [str(i) for i in ids]


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
        InvalidDefinition: the graph, or one it runs, has a problem (a stored draft).
        InvalidInput: malformed `input_scope`. NotFound: an `input_scope` id the caller cannot read.
        BadRequest: `selected_skill_ids`.
    """
    wf, d = await get_definition(session, who, definition_id)
    if d.is_template:
        raise Conflict("Templates cannot have runs; instantiate the template first")
    if form.idempotency_key:
        existing = await v1_draft_repo.run_by_idempotency_key(
            session, wf.id, who.user_id, form.idempotency_key
        )
        if existing is not None:
            return existing
    await check_runnable(session, wf)
    scope_ids = _json_ids(form.input_scope, "input_scope")
    scope = await _check_scope(session, who, scope_ids) if scope_ids is not None else None
    skills = _json_ids(form.selected_skill_ids, "selected_skill_ids")
    if skills:
        raise BadRequest("selected_skill_ids: no such skills (this service has no skills)")
    if form.name is not None and await v1_draft_repo.run_name_taken(session, wf.id, form.name):
        raise Conflict(f"A run named '{form.name}' already exists for this workflow")
    run_id = uuid.uuid4()
    # Plain values, read before the flush: a failed flush rolls back and expires every ORM object.
    workflow_id, user_id = wf.id, who.user_id
    now = utcnow()
    run = Run(
        id=run_id,
        tenant_id=who.tenant_id,
        workflow_id=workflow_id,
        triggered_by=user_id,
        status=RunStatus.PENDING.value,
        v1=True,
        name=form.name,
        path_part_id=uuid.uuid4(),
        draft_state=DraftState.PENDING if files else DraftState.NOT_STARTED,
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
        if form.idempotency_key:  # a racing create by the same caller with the same key won
            again_ = await v1_draft_repo.run_by_idempotency_key(
                session, workflow_id, user_id, form.idempotency_key
            )
            if again_ is not None:
                return again_
        raise Conflict(f"A run named '{form.name}' already exists for this workflow") from None
    await run_state.record_created(session, run, cause=str(user_id))
    made = await _run_folders(session, who, d, wf, run)
    await session.flush()
    docs = [
        await v1_resources.create_upload(session, who, made["inputs"], name, content, ctype)
        for name, content, ctype in files
    ]
    await session.commit()
    try:
        await start_ingestions(session, client, settings, docs)
    except Unavailable:
        # The run exists (and is settled: its refused uploads are FAILED); the caller gets it, 201.
        return await get_run(session, who, run_id)
    return run


async def start_ingestions(
    session: AsyncSession, client: Client, settings: Settings, docs: list[Document]
) -> None:
    """Start the committed uploads' ingestion workflows. An upload whose workflow Temporal refuses is
    FAILED and its draft settled, so no draft waits PENDING on an ingestion that never started.

    Raises:
        Unavailable: Temporal refused at least one start.
    """
    refused: Exception | None = None
    for doc in docs:
        try:
            await v1_resources.start_ingestion(client, settings, doc)
        except WorkflowAlreadyStartedError:
            continue  # an earlier (timed-out) start landed
        except Exception as err:
            if isinstance(err, RPCError) and await _ingestion_exists(client, doc):
                continue  # a timed-out start may still have landed
            await session.rollback()  # a transaction of its own, whatever the caller read before
            reason = err.message if isinstance(err, RPCError) else str(err) or type(err).__name__
            await v1_draft_repo.fail_ingestion_start(session, doc.id, reason)
            if doc.run_id is not None:
                await settle_draft(session, client, settings, doc.run_id)
            refused = refused or err
    if isinstance(refused, RPCError):
        raise Unavailable("Temporal is unavailable; the upload could not be ingested") from refused
    if refused is not None:
        raise refused


async def _ingestion_exists(client: Client, doc: Document) -> bool:
    try:
        await client.get_workflow_handle(doc.ingest_workflow_id or f"ingest-{doc.id}").describe()
    except RPCError:
        return False
    return True


async def settle_draft(session: AsyncSession, client: Client, settings: Settings, run_id: uuid.UUID) -> None:
    """Settle a PENDING draft whose uploads are all done, as the ingestion workflow's settle step does
    (`settle_run_inputs`): back to NOT_STARTED, or (auto_start) dispatched, or FAILED when an upload
    failed. Nothing while an upload is still ingesting: its workflow settles the draft. For the paths
    that end an upload outside its workflow (a refused start, a deleted upload)."""
    run = await v1_draft_repo.locked_draft(session, run_id)
    if run is None or run.draft_state != v1.PENDING:
        await session.rollback()
        return
    statuses = await v1_draft_repo.upload_states(session, run_id)
    if any(s == IngestStatus.PENDING for _, s, _ in statuses):
        await session.rollback()
        return
    failed = [(n, e) for n, s, e in statuses if s == IngestStatus.FAILED]
    if not run.auto_start:
        await repo.set_draft_state(session, run_id, v1.PENDING, v1.NOT_STARTED)
        await session.commit()
        return
    if failed:
        name, err = failed[0]
        await repo.fail_draft(session, run_id, f"Input '{name}' failed ingestion: {err}")
        await session.commit()
        return
    await session.commit()
    # Conflict: a racing settle or upload decided. Unavailable: the start failed; the run is stored FAILED.
    with contextlib.suppress(Conflict, Unavailable):
        await launch(session, client, settings, run, None, [v1.PENDING], eager=False, cause=Cause.ENGINE)


async def _run_folders(
    session: AsyncSession, who: Principal, d: V1Definition, wf: Workflow, run: Run
) -> dict[str, Folder]:
    """The run's inputs/, outputs/ and discussions/ folders, under the run's path part."""
    def_path = await v1_draft_repo.definition_path(session, d, wf)
    run_path = v1.child_path(def_path, run.name or str(run.id))
    made = {}
    for role in ("inputs", "outputs", "discussions"):
        made[role] = Folder(
            # Derived from the run, so presenting a run needs no folder query.
            id=v1.derived_id(run.id, role),
            path_part_id=v1.derived_id(run.id, role + "/pp"),
            tenant_id=who.tenant_id,
            parent_path_part_id=run.path_part_id,
            name=role,
            materialized_path=v1.child_path(run_path, role),
            system_managed=True,
            run_id=run.id,
            role=role,
            owner_id=who.user_id,
        )
        session.add(made[role])
    return made


async def update_run(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    who: Principal,
    run_id: uuid.UUID,
    body: RunEdit,
    eager: bool,
) -> Run:
    """Edit a draft: name, input_scope, auto_start, user_message. Arming auto_start on a NOT_STARTED
    run dispatches it at once; on a PENDING run it starts when the uploads settle.

    Raises:
        BadRequest: no field set. Forbidden: not the triggerer or an owner/admin.
        Conflict: the run is not a draft; the name is taken.
    """
    if body.is_empty():
        raise BadRequest("Set at least one of input_scope, name, auto_start, user_message")
    run = await get_run(session, who, run_id, lock=True)
    access.ensure_may_change_run(who, run.triggered_by)
    may(V1Operation.EDIT, run)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if body.name is not None:
        if await v1_draft_repo.run_name_taken(session, run.workflow_id, body.name, exclude=run.id):
            raise Conflict(f"A run named '{body.name}' already exists for this workflow")
        values["name"] = body.name
        wf, d = await get_definition(session, who, run.workflow_id)
        def_path = await v1_draft_repo.definition_path(session, d, wf)
        await v1.move_run_paths(session, run.id, v1.child_path(def_path, body.name))
    if body.input_scope is not None:
        values["input_scope"] = await _check_scope(session, who, body.input_scope)
    if body.auto_start is not None:
        values["auto_start"] = body.auto_start
    if body.user_message is not None:
        values["auto_start_user_message"] = body.user_message or None
    if body.auto_start and run.draft_state == v1.NOT_STARTED:
        # Arming a NOT_STARTED draft dispatches it: refuse before anything is written (the row is
        # locked, so no upload lands between this check and the commit).
        await _ensure_inputs_ready(session, run.id)
    await v1_draft_repo.update_draft(session, run.id, values)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"A run named '{body.name}' already exists for this workflow") from None
    run = await get_run(session, who, run_id)
    if body.auto_start and run.draft_state == v1.NOT_STARTED:
        try:
            await launch(
                session, client, settings, run, None, [v1.NOT_STARTED], eager, cause=str(who.user_id)
            )
        except Conflict:
            # An upload landed after the commit: the armed draft is PENDING and starts once it settles.
            run = await get_run(session, who, run_id)
            if run.draft_state != v1.PENDING:
                raise
        run = await get_run(session, who, run_id)
    return run


async def _ensure_inputs_ready(session: AsyncSession, run_id: uuid.UUID) -> None:
    """Raises Conflict when an upload of the run is still being ingested or failed ingestion (the
    same refusal as dispatching it)."""
    problem = await v1_draft_repo.first_unready_upload(session, run_id)
    if problem is None:
        return
    name, status, error = problem
    if status == IngestStatus.PENDING:
        raise Conflict(f"Input '{name}' is still being ingested")
    raise Conflict(f"Input '{name}' failed ingestion: {error}")


async def delete_run(session: AsyncSession, who: Principal, run_id: uuid.UUID) -> None:
    """Delete a run that is not IN_PROGRESS. The delete is guarded, so a start that commits first
    (a concurrent start, an auto-start) makes it a 409, never a deleted running run."""
    run = await get_run(session, who, run_id)
    access.ensure_may_change_run(who, run.triggered_by)
    if await v1_draft_repo.delete_unless_in_progress(session, run.id) is False:
        # (None: a concurrent delete won.)
        raise Conflict("The run is in progress; stop it first")


async def clone_run(session: AsyncSession, who: Principal, run_id: uuid.UUID, include_inputs: bool) -> Run:
    """A new NOT_STARTED draft of the same definition; with `include_inputs`, the source snapshot's
    inputs become its input scope. Raises Conflict for a source that never started."""
    source = await get_run(session, who, run_id)
    if source.snapshot is None or source.draft_state is not None:
        raise Conflict("Only a run that has started (and so has a snapshot) can be cloned")
    wf, d = await get_definition(session, who, source.workflow_id)
    if d.is_template:
        raise Conflict("Templates cannot have runs")
    scope: list[str] = []
    uploads: list[str] = []
    if include_inputs:
        for item in source.snapshot.get("inputs", []):
            origin = item.get("origin")
            if origin == "DEFINITION_COMMON":
                continue  # the definition's common files: every start adds them again
            (uploads if origin == "RUN_UPLOAD" else scope).append(str(item["path_part_id"]))
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
        draft_state=DraftState.NOT_STARTED,
        input_scope=scope,
        start_time=now,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    await run_state.record_created(
        session, run, cause=str(who.user_id), reason=f"Cloned from run {source.id}"
    )
    made = await _run_folders(session, who, d, wf, run)
    await session.flush()
    await _copy_uploads(session, source.id, uploads, made["inputs"], now)
    await session.flush()
    return run


async def _copy_uploads(
    session: AsyncSession, source_id: uuid.UUID, version_ids: list[str], inputs: Folder, now: datetime
) -> None:
    """The source run's (ingested) uploads become uploads of the clone, in snapshot order: they live in
    the source's `inputs/` folder and would go with the source run, so a reference could dangle."""
    if not version_ids:
        return
    by_version = await v1_draft_repo.uploads_by_version(session, source_id, version_ids)
    for i, vid in enumerate(version_ids):
        src = by_version.get(vid)
        if src is None:
            continue
        at = now + timedelta(microseconds=i)  # dispatch reads uploads in creation order
        session.add(
            Document(
                tenant_id=src.tenant_id,
                parent_path_part_id=inputs.path_part_id,
                materialized_path=v1.child_path(inputs.materialized_path, src.name),
                run_id=inputs.run_id,
                name=src.name,
                media_type=src.media_type,
                origin=DocumentOrigin.SOURCE,
                size_bytes=src.size_bytes,
                content=src.content,
                text=src.text,
                ingest_status=src.ingest_status,
                ingest_error=src.ingest_error,
                uploaded_by=src.uploaded_by,
                created_at=at,
                updated_at=at,
            )
        )
