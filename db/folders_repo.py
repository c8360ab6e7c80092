"""v1 folders and documents: lookups by either of their ids, folder listings, emptiness, deletion."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Document, Folder, V1Definition


async def folder_by_any_id(
    session: AsyncSession, tenant_id: uuid.UUID, folder_id: uuid.UUID
) -> Folder | None:
    """A folder by its id or its path_part id (clients use both)."""
    return await session.scalar(
        select(Folder).where(
            Folder.tenant_id == tenant_id, (Folder.id == folder_id) | (Folder.path_part_id == folder_id)
        )
    )


async def folder_by_path_part(
    session: AsyncSession, tenant_id: uuid.UUID, path_part_id: uuid.UUID
) -> Folder | None:
    return await session.scalar(
        select(Folder).where(Folder.tenant_id == tenant_id, Folder.path_part_id == path_part_id)
    )


async def child_folders(
    session: AsyncSession, tenant_id: uuid.UUID, parent: uuid.UUID, limit: int, offset: int
) -> tuple[list[Folder], int]:
    """A page of the folders under `parent` by name, and how many there are."""
    q = select(Folder).where(Folder.tenant_id == tenant_id, Folder.parent_path_part_id == parent)
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = await session.scalars(q.order_by(Folder.name, Folder.id).limit(limit).offset(offset))
    return list(rows.all()), total


async def contents(
    session: AsyncSession, tenant_id: uuid.UUID, parent: uuid.UUID
) -> tuple[list[Folder], list[Document]]:
    """Everything directly in a folder: its folders, then its documents, each by name."""
    folders = await session.scalars(
        select(Folder)
        .where(Folder.tenant_id == tenant_id, Folder.parent_path_part_id == parent)
        .order_by(Folder.name)
    )
    docs = await session.scalars(
        select(Document)
        .where(Document.tenant_id == tenant_id, Document.parent_path_part_id == parent)
        .order_by(Document.name, Document.id)
    )
    return list(folders.all()), list(docs.all())


async def holds_anything(session: AsyncSession, path_part_id: uuid.UUID) -> bool:
    """Whether a folder holds folders, documents or workflow definitions."""
    for model, column in (
        (Folder, Folder.parent_path_part_id),
        (Document, Document.parent_path_part_id),
        (V1Definition, V1Definition.parent_path_part_id),
    ):
        if await session.scalar(select(func.count()).select_from(model).where(column == path_part_id)):
            return True
    return False


async def document_by_any_id(
    session: AsyncSession, tenant_id: uuid.UUID, doc_id: uuid.UUID
) -> Document | None:
    return await session.scalar(
        select(Document).where(
            Document.tenant_id == tenant_id, (Document.id == doc_id) | (Document.path_part_id == doc_id)
        )
    )


async def document_by_path_part(
    session: AsyncSession, tenant_id: uuid.UUID | None, path_part_id: uuid.UUID
) -> Document | None:
    """`tenant_id` None: any tenant's (for a path part already known to belong to the caller)."""
    q = select(Document).where(Document.path_part_id == path_part_id)
    if tenant_id is not None:
        q = q.where(Document.tenant_id == tenant_id)
    return await session.scalar(q)


async def is_instruction(session: AsyncSession, path_part_id: uuid.UUID) -> bool:
    """Whether a document is some workflow definition's instruction."""
    found = await session.scalar(
        select(V1Definition.workflow_id).where(V1Definition.instruction_path_part_id == path_part_id).limit(1)
    )
    return found is not None


async def remove(session: AsyncSession, row: Folder | Document) -> None:
    await session.delete(row)
