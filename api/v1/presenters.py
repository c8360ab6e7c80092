"""Rows to v1 wire models; lists load their related rows in a few batched queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.v1 import schemas as w
from core.access import is_admin, may_change
from core.v1_resources import user_names
from db import v1_queries as queries
from db import v1_repo as v1
from db import v1_threads
from db.accounts import Principal
from db.models import ApiKey, Document, Folder, Run, User, V1Definition, Workflow
from run_status import DocumentOrigin


def user_info(user_id: uuid.UUID | None, users: dict[uuid.UUID, User]) -> w.UserInfo | None:
    if user_id is None:
        return None
    return w.UserInfo(user_id=user_id, **user_names(users.get(user_id)))


def started_at(run: Run) -> datetime | None:
    """When Start dispatched the run; null until then. A v1 run gets its snapshot at dispatch, so a
    v1 run without one never started (a draft, or one failed by its uploads' ingestion)."""
    if run.draft_state is not None or (run.v1 and run.snapshot is None):
        return None
    return run.start_time


def run_permissions(who: Principal, run: Run) -> w.ItemPermissions:
    mine = may_change(who, run.triggered_by)
    return w.ItemPermissions(can_read=True, can_write=mine, can_delete=mine, can_approve=is_admin(who))


def _asset(doc: Document, folder_path: str) -> w.RunAsset:
    return w.RunAsset(
        id=doc.id,
        path_part_id=doc.path_part_id,
        name=doc.name,
        part_type="DOCUMENT",
        # Derived, not stored: a renamed run's documents follow its name.
        materialized_path=v1.child_path(folder_path, doc.name),
        approval_state=doc.approval_state,
        origin="RUN_UPLOAD" if doc.origin == DocumentOrigin.SOURCE else None,
    )


async def runs(
    session: AsyncSession, who: Principal, rows: Sequence[Run], *, permissions: bool = True
) -> list[w.WorkflowRunResponse]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    docs = await queries.run_documents(session, ids)
    usage = await queries.run_usage(session, ids)
    users = await queries.users(session, {r.triggered_by for r in rows})
    paths = await queries.definition_paths(session, {r.workflow_id for r in rows})
    threads = await v1_threads.threads_of(session, ids)
    out = []
    for r in rows:
        def_pp, def_path = paths.get(r.workflow_id, (v1.derived_id(r.workflow_id, "definition"), "/"))
        name = r.name or str(r.id)
        path = v1.child_path(def_path, name)

        def folder(role: str, r: Run = r, path: str = path) -> tuple[uuid.UUID, uuid.UUID, str]:
            # Run folder ids are derived from the run (`v1_draft_service`); runs made outside v1 get
            # the same ids without folder rows.
            return v1.derived_id(r.id, role), v1.derived_id(r.id, role + "/pp"), v1.child_path(path, role)

        ins, outs, disc = folder("inputs"), folder("outputs"), folder("discussions")
        triggered = r.triggered_by or uuid.UUID(int=0)
        out.append(
            w.WorkflowRunResponse(
                id=r.id,
                path_part_id=r.path_part_id or v1.derived_id(r.id, "run"),
                parent_path_part_id=def_pp,
                materialized_path=path,
                tenant_id=r.tenant_id,
                name=name,
                workflow_definition_id=r.workflow_id,
                triggered_by=user_info(triggered, users) or w.UserInfo(user_id=triggered),
                owner=user_info(r.triggered_by, users),
                execution_state=v1.execution_state(r.status, r.draft_state),
                approval_state=r.approval_state,
                started_at=started_at(r),
                completed_at=r.end_time,
                run_snapshot=r.snapshot,
                error=r.error,
                auto_start=r.auto_start,
                auto_start_user_message=r.auto_start_user_message,
                inputs=w.RunFolder(
                    id=ins[0],
                    path_part_id=ins[1],
                    materialized_path=ins[2],
                    assets=[_asset(d, ins[2]) for d in docs.get(ins[1], [])],
                ),
                outputs=w.RunFolder(
                    id=outs[0],
                    path_part_id=outs[1],
                    materialized_path=outs[2],
                    assets=[_asset(d, outs[2]) for d in docs.get(outs[1], [])],
                ),
                discussions=w.RunFolderRef(id=disc[0], path_part_id=disc[1], materialized_path=disc[2]),
                excluded_common_files=[],
                created_at=r.created_at,
                updated_at=r.updated_at,
                permissions=run_permissions(who, r) if permissions else None,
                input_path_part_ids=[uuid.UUID(i) for i in r.input_scope or []],
                usage=usage.get(r.id),
                run_thread_id=threads.get(r.id),
            )
        )
    return out


async def run(
    session: AsyncSession, who: Principal, row: Run, *, permissions: bool = False
) -> w.WorkflowRunResponse:
    return (await runs(session, who, [row], permissions=permissions))[0]


async def definitions(
    session: AsyncSession,
    who: Principal,
    rows: Sequence[tuple[Workflow, V1Definition]],
    *,
    permissions: bool = True,
) -> list[w.WorkflowDefinitionResponse]:
    if not rows:
        return []
    wf_ids = [wf.id for wf, _ in rows]
    paths = await queries.definition_paths(session, set(wf_ids))
    users = await queries.users(session, {d.owner_id for _, d in rows})
    stats = await queries.definition_stats(session, wf_ids)
    out = []
    for wf, d in rows:
        last = stats.last_runs.get(wf.id)
        out.append(
            w.WorkflowDefinitionResponse(
                id=wf.id,
                path_part_id=d.path_part_id,
                parent_path_part_id=d.parent_path_part_id,
                materialized_path=paths[wf.id][1],
                tenant_id=wf.tenant_id,
                name=wf.name,
                description=wf.description,
                max_run_duration_seconds=d.max_run_duration_seconds,
                instruction_path_part_id=d.instruction_path_part_id,
                is_active=d.is_active,
                approval_required=d.approval_required,
                is_template=d.is_template,
                selected_skill_ids=[uuid.UUID(i) for i in d.selected_skill_ids]
                if d.selected_skill_ids is not None
                else None,
                common_file_path_part_ids=[uuid.UUID(i) for i in d.common_file_path_part_ids]
                if d.common_file_path_part_ids is not None
                else None,
                created_from_id=d.created_from_id,
                copy_count=stats.copies.get(wf.id, 0),
                pending_approval_count=stats.pending_approvals.get(wf.id, 0),
                last_run=w.LastRunSummary(
                    id=last.id,
                    execution_state=v1.execution_state(last.status, last.draft_state),
                    approval_state=last.approval_state,
                    created_at=last.created_at,
                    started_at=started_at(last),
                    completed_at=last.end_time,
                    error=last.error,
                )
                if last is not None
                else None,
                owner=user_info(d.owner_id, users),
                schedule_cadence=d.schedule_cadence,
                schedule_start_at=d.schedule_start_at,
                schedule_timezone=d.schedule_timezone,
                created_at=wf.created_at,
                updated_at=wf.updated_at,
                permissions=w.ItemPermissions(
                    can_read=True, can_write=True, can_delete=True, can_approve=is_admin(who)
                )
                if permissions
                else None,
            )
        )
    return out


def folder(f: Folder) -> w.FolderResponse:
    return w.FolderResponse(
        id=f.id,
        path_part_id=f.path_part_id,
        name=f.name,
        parent_path_part_id=f.parent_path_part_id,
        materialized_path=f.materialized_path,
        system_managed=f.system_managed,
        tenant_id=f.tenant_id,
        owner=w.UserInfo(user_id=f.owner_id) if f.owner_id else None,
        created_at=f.created_at,
        updated_at=f.updated_at,
    )


_DOC_TYPES = {
    "application/pdf": "PDF",
    "application/json": "JSON",
    "text/csv": "CSV",
    "application/x-yaml": "YAML",
    "application/yaml": "YAML",
}


def document(d: Document) -> w.DocumentResponse:
    uploader = d.uploaded_by or uuid.UUID(int=0)
    doc_type = _DOC_TYPES.get(d.media_type) or (
        "PLAINTEXT"
        if d.media_type.startswith("text/")
        else "IMAGE"
        if d.media_type.startswith("image/")
        else "UNKNOWN"
    )
    return w.DocumentResponse(
        id=d.id,
        path_part_id=d.path_part_id,
        name=d.name,
        parent_path_part_id=d.parent_path_part_id,
        document_type=doc_type,
        document_origin=d.origin,
        active_version_id=d.version_id,
        active_version=w.DocumentVersionResponse(
            id=d.version_id,
            path_part_id=d.version_path_part_id,
            name=d.name,
            parent_path_id=d.path_part_id,
            materialized_path=d.materialized_path,
            tenant_id=d.tenant_id,
            uploader=w.UserInfo(user_id=uploader),
            created_at=d.created_at,
            updated_at=d.updated_at,
        ),
        materialized_path=d.materialized_path,
        approval_state=d.approval_state,
        tenant_id=d.tenant_id,
        owner=w.UserInfo(user_id=d.uploaded_by) if d.uploaded_by else None,
        created_at=d.created_at,
        updated_at=d.updated_at,
        ingest_status=d.ingest_status,
    )


def api_key(k: ApiKey) -> w.ApiKeyResponse:
    return w.ApiKeyResponse(
        id=k.id, name=k.name, key_suffix=k.prefix, created_at=k.created_at, expires_at=k.expires_at
    )


def user(u: User) -> w.UserResponse:
    names = user_names(u)
    return w.UserResponse(
        id=u.id,
        email=u.email,
        first_name=names["first_name"],
        last_name=names["last_name"],
        current_tenant_id=u.tenant_id,
        current_tenant_role=u.role,
        default_tenant_id=u.tenant_id,
    )
