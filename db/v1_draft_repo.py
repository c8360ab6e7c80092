"""v1 drafts: the reads and row writes behind creating, editing, settling, cloning and deleting a
draft run (draft *state* changes stay in `db/repo.py`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import v1_repo as v1
from db.models import Document, Folder, Run, V1Definition, Workflow, utcnow
from run_status import DocumentOrigin, IngestStatus


async def readable_scope(session: AsyncSession, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `ids` that name a document (or document version) or folder of the tenant."""
    if not ids:
        return set()
    docs = await session.execute(
        select(Document.path_part_id, Document.version_path_part_id).where(
            Document.tenant_id == tenant_id,
            Document.path_part_id.in_(ids) | Document.version_path_part_id.in_(ids),
        )
    )
    found = {pp for row in docs.all() for pp in row}
    folders = await session.scalars(
        select(Folder.path_part_id).where(Folder.tenant_id == tenant_id, Folder.path_part_id.in_(ids))
    )
    return found | set(folders.all())


async def run_name_taken(
    session: AsyncSession, workflow_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> bool:
    q = select(Run.id).where(Run.workflow_id == workflow_id, Run.name == name)
    if exclude is not None:
        q = q.where(Run.id != exclude)
    return (await session.scalar(q)) is not None


async def run_by_idempotency_key(
    session: AsyncSession, workflow_id: uuid.UUID, user_id: uuid.UUID, key: str
) -> Run | None:
    return await session.scalar(
        select(Run).where(
            Run.workflow_id == workflow_id, Run.triggered_by == user_id, Run.idempotency_key == key
        )
    )


async def fail_ingestion_start(session: AsyncSession, doc_id: uuid.UUID, reason: str) -> None:
    """A PENDING upload whose ingestion could not start becomes FAILED (committed)."""
    await session.execute(
        update(Document)
        .where(Document.id == doc_id, Document.ingest_status == IngestStatus.PENDING)
        .values(
            ingest_status=IngestStatus.FAILED,
            ingest_error=f"Could not start ingestion: {reason}",
            updated_at=utcnow(),
        )
    )
    await session.commit()


async def locked_draft(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """The run as stored now, locked until the transaction ends."""
    return await session.scalar(
        select(Run).where(Run.id == run_id).with_for_update().execution_options(populate_existing=True)
    )


async def upload_states(session: AsyncSession, run_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
    """`(name, ingest_status, ingest_error)` of the run's uploads, oldest first."""
    rows = await session.execute(
        select(Document.name, Document.ingest_status, Document.ingest_error)
        .where(Document.run_id == run_id, Document.origin == DocumentOrigin.SOURCE)
        .order_by(Document.created_at, Document.id)
    )
    return [(n, s, e) for n, s, e in rows.all()]


async def first_unready_upload(
    session: AsyncSession, run_id: uuid.UUID
) -> tuple[str, str, str | None] | None:
    """`(name, ingest_status, ingest_error)` of the oldest upload still ingesting or failed."""
    row = (
        await session.execute(
            select(Document.name, Document.ingest_status, Document.ingest_error)
            .where(
                Document.run_id == run_id,
                Document.origin == DocumentOrigin.SOURCE,
                Document.ingest_status.in_([IngestStatus.PENDING, IngestStatus.FAILED]),
            )
            .order_by(Document.created_at, Document.id)
            .limit(1)
        )
    ).first()
    return (row[0], row[1], row[2]) if row is not None else None


async def definition_path(session: AsyncSession, d: V1Definition, wf: Workflow) -> str:
    """The definition's materialized path (its folder's path and its name)."""
    parent = await session.scalar(
        select(Folder.materialized_path).where(Folder.path_part_id == d.parent_path_part_id)
    )
    return v1.child_path(parent or "/", wf.name)


async def update_draft(session: AsyncSession, run_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Set a draft's editable fields (name, input scope, auto start); the caller commits."""
    await session.execute(update(Run).where(Run.id == run_id).values(**values))


async def delete_unless_in_progress(session: AsyncSession, run_id: uuid.UUID) -> bool | None:
    """Delete the run unless it is IN_PROGRESS. True: deleted; None: it was already gone;
    False: it is in progress (rolled back)."""
    result = await session.execute(
        delete(Run).where(Run.id == run_id, v1.execution_state_sql() != v1.IN_PROGRESS)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    # A fresh transaction, so the check below sees a concurrent delete that committed.
    await session.rollback()
    if await session.scalar(select(Run.id).where(Run.id == run_id)) is None:
        return None
    return False


async def uploads_by_version(
    session: AsyncSession, run_id: uuid.UUID, version_ids: list[str]
) -> dict[str, Document]:
    """The run's uploads whose version path part id is one of `version_ids`, by that id."""
    rows = await session.scalars(
        select(Document).where(
            Document.run_id == run_id,
            Document.origin == DocumentOrigin.SOURCE,
            Document.version_path_part_id.in_([uuid.UUID(v) for v in version_ids]),
        )
    )
    return {str(d.version_path_part_id): d for d in rows.all()}
