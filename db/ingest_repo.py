"""Rows the document-ingestion activities read and write: the upload being extracted, and a v1 draft's
inputs folder whose uploads decide whether the draft can start."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Document, Folder, Run, utcnow
from run_status import IngestStatus


async def locked_document(session: AsyncSession, document_id: uuid.UUID) -> Document | None:
    """The upload, locked until the transaction ends, so two attempts cannot extract it at once."""
    return await session.get(Document, document_id, with_for_update=True)


def record_extraction(doc: Document, text: str | None, error: str | None) -> IngestStatus:
    """Stores the extracted text (or the error) on the locked upload; returns its new ingest status."""
    doc.text = text
    doc.ingest_status = IngestStatus.FAILED if error else IngestStatus.COMPLETED
    doc.ingest_error = error
    doc.updated_at = utcnow()
    return IngestStatus(doc.ingest_status)


async def locked_run(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """The run, if it still exists, locked until the transaction ends."""
    return await session.scalar(select(Run).where(Run.id == run_id).with_for_update())


async def input_statuses(session: AsyncSession, run_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
    """`(name, ingest status, ingest error)` of every upload in the run's inputs folder."""
    inputs = await session.scalar(select(Folder).where(Folder.run_id == run_id, Folder.role == "inputs"))
    rows = await session.execute(
        select(Document.name, Document.ingest_status, Document.ingest_error).where(
            Document.parent_path_part_id == (inputs.path_part_id if inputs else None)
        )
    )
    return [(name, status, error) for name, status, error in rows.all()]


async def touch_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    await session.execute(update(Run).where(Run.id == run_id).values(updated_at=utcnow()))
