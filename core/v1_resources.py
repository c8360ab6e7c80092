"""v1 folders, documents (upload + ingestion), API keys and the caller's user: rules below the routes."""

from __future__ import annotations

import mimetypes
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core import access
from db import accounts, folders_repo, repo, run_queries
from db import v1_repo as v1
from db.accounts import Principal
from db.models import ApiKey, Document, Folder, User, utcnow
from errors import BadRequest, Conflict, NotFound
from run_status import DocumentOrigin, IngestStatus
from settings import Settings
from workflows.contracts import IngestInput
from workflows.ingest_workflow import IngestDocumentWorkflow

# -- folders -------------------------------------------------------------------------------------------


async def folder_by_any_id(session: AsyncSession, who: Principal, folder_id: uuid.UUID) -> Folder:
    """A folder by its id or its path_part id (clients use both), in the caller's tenant."""
    folder = await folders_repo.folder_by_any_id(session, who.tenant_id, folder_id)
    if folder is None:
        if await _is_root_request(session, who, folder_id):
            return await v1.root_folder(session, who.tenant_id)
        raise NotFound("Folder not found")
    return folder


async def _is_root_request(session: AsyncSession, who: Principal, folder_id: uuid.UUID) -> bool:
    root = await v1.root_folder(session, who.tenant_id)
    return folder_id in (root.id, root.path_part_id)


async def parent_folder(session: AsyncSession, who: Principal, path_part_id: uuid.UUID) -> Folder:
    """A folder that may hold user content (not a run's system folders)."""
    await v1.root_folder(session, who.tenant_id)
    folder = await folders_repo.folder_by_path_part(session, who.tenant_id, path_part_id)
    if folder is None:
        raise NotFound("Parent folder not found")
    return folder


async def create_folder(session: AsyncSession, who: Principal, name: str, parent_id: uuid.UUID) -> Folder:
    parent = await parent_folder(session, who, parent_id)
    if parent.run_id is not None:
        raise BadRequest("A run's folders hold documents only")
    folder = Folder(
        tenant_id=who.tenant_id,
        parent_path_part_id=parent.path_part_id,
        name=name,
        materialized_path=v1.child_path(parent.materialized_path, name),
        owner_id=who.user_id,
    )
    session.add(folder)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A folder named '{name}' already exists here") from None
    return folder


async def list_folders(
    session: AsyncSession, who: Principal, parent_id: uuid.UUID | None, limit: int, offset: int
) -> tuple[list[Folder], int]:
    """Folders under `parent_id`; with no parent, the top of the tree: the tenant's root folder."""
    root = await v1.root_folder(session, who.tenant_id)
    if parent_id is None:
        return ([root] if offset == 0 else []), 1
    return await folders_repo.child_folders(session, who.tenant_id, parent_id, limit, offset)


async def folder_contents(
    session: AsyncSession, who: Principal, folder: Folder, limit: int, offset: int
) -> tuple[list[Folder | Document], int]:
    folders, docs = await folders_repo.contents(session, who.tenant_id, folder.path_part_id)
    items: list[Folder | Document] = [*folders, *docs]
    return items[offset : offset + limit], len(items)


async def delete_folder(session: AsyncSession, who: Principal, folder_id: uuid.UUID) -> None:
    folder = await folder_by_any_id(session, who, folder_id)
    if folder.parent_path_part_id is None or folder.run_id is not None or folder.system_managed:
        raise Conflict("System folders cannot be deleted")
    access.ensure_may_change(
        who, folder.owner_id, "Only the folder's owner or an owner or admin may delete it"
    )
    if await folders_repo.holds_anything(session, folder.path_part_id):
        raise Conflict("The folder is not empty")
    await folders_repo.remove(session, folder)


# -- documents -----------------------------------------------------------------------------------------


def media_type_of(name: str, declared: str | None) -> str:
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(name)[0] or declared or "application/octet-stream"


async def create_upload(
    session: AsyncSession,
    who: Principal,
    folder: Folder,
    name: str,
    content: bytes,
    declared_type: str | None,
) -> Document:
    """Store an upload as a PENDING document in `folder`; a run's `inputs/` upload makes the run's
    draft PENDING until ingestion settles. The caller commits, then starts the ingestion."""
    if folder.run_id is not None:
        if folder.role != "inputs":
            raise BadRequest("Uploads into a run go to its inputs/ folder")
        # Locked, so that settling the run's other uploads sees this one (or runs after it commits).
        run = await run_queries.locked_run(session, folder.run_id)
        access.ensure_may_change(
            who,
            run.triggered_by,
            "Only the user who created this run, or an owner or admin, may add its inputs",
        )
        if run.draft_state is None:
            raise Conflict("The run has started; its inputs can no longer change")
        await repo.set_draft_state(session, run.id, v1.NOT_STARTED, v1.PENDING)
    doc_id = uuid.uuid4()
    doc = Document(
        id=doc_id,
        ingest_workflow_id=f"ingest-{doc_id}",
        tenant_id=who.tenant_id,
        parent_path_part_id=folder.path_part_id,
        materialized_path=v1.child_path(folder.materialized_path, name),
        run_id=folder.run_id,
        name=name,
        media_type=media_type_of(name, declared_type),
        origin=DocumentOrigin.SOURCE,
        size_bytes=len(content),
        content=content,
        ingest_status=IngestStatus.PENDING,
        uploaded_by=who.user_id,
    )
    session.add(doc)
    await session.flush()
    return doc


async def start_ingestion(client: Client, settings: Settings, doc: Document) -> None:
    """The ingestion is a Temporal workflow (text extraction, then settling the run's inputs)."""
    await client.start_workflow(
        IngestDocumentWorkflow.run,
        IngestInput(document_id=str(doc.id), run_id=str(doc.run_id) if doc.run_id else None),
        id=doc.ingest_workflow_id or f"ingest-{doc.id}",
        task_queue=settings.temporal_task_queue,
    )


async def document_by_any_id(session: AsyncSession, who: Principal, doc_id: uuid.UUID) -> Document:
    doc = await folders_repo.document_by_any_id(session, who.tenant_id, doc_id)
    if doc is None:
        raise NotFound("Document not found")
    return doc


async def delete_document(session: AsyncSession, who: Principal, doc_id: uuid.UUID) -> None:
    """Remove a document. A run's outputs and a started run's inputs stay. A draft's upload still being
    ingested may go: its ingestion workflow still settles the draft (NOT_STARTED, or auto-start).

    Raises:
        NotFound: unknown document. Forbidden: another user's run. Conflict: the run has started.
    """
    doc = await document_by_any_id(session, who, doc_id)
    if doc.run_id is not None:
        run = await run_queries.locked_run(session, doc.run_id)
        access.ensure_may_change(
            who,
            run.triggered_by,
            "Only the user who created this run, or an owner or admin, may change its inputs",
        )
        if run.draft_state is None or doc.origin != DocumentOrigin.SOURCE:
            raise Conflict("The run has started; its documents can no longer change")
    else:
        access.ensure_may_change(
            who, doc.uploaded_by, "Only the uploader or an owner or admin may delete a document"
        )
    if await folders_repo.is_instruction(session, doc.path_part_id):
        raise Conflict("The document is a workflow's instruction")
    await folders_repo.remove(session, doc)
    # Committed now: settling the run's draft next is a transaction of its own (it may roll back).
    await session.commit()


async def document_by_path_part(session: AsyncSession, who: Principal, path_part_id: uuid.UUID) -> Document:
    doc = await folders_repo.document_by_path_part(session, who.tenant_id, path_part_id)
    if doc is None:
        raise NotFound("Document not found")
    return doc


# -- API keys and users --------------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession, who: Principal, name: str, expires_at: datetime | None
) -> tuple[ApiKey, str]:
    if expires_at is not None and expires_at <= utcnow():
        raise BadRequest("expires_at must be in the future")
    user = await accounts.user(session, who.user_id)
    assert user is not None
    key, plaintext = await accounts.create_api_key(session, user, name, expires_at)
    return key, plaintext


async def list_api_keys(session: AsyncSession, who: Principal) -> list[ApiKey]:
    return await accounts.api_keys(session, who.user_id)


async def delete_api_key(session: AsyncSession, who: Principal, key_id: uuid.UUID) -> None:
    if not await accounts.revoke_api_key(session, who.user_id, key_id):
        raise NotFound("API key not found")


async def me(session: AsyncSession, who: Principal) -> User:
    user = await accounts.user(session, who.user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def user_names(user: User | None) -> dict[str, Any]:
    if user is None or not user.name:
        return {"first_name": None, "last_name": None}
    first, _, last = user.name.partition(" ")
    return {"first_name": first or None, "last_name": last or None}
