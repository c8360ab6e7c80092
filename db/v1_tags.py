"""v1 tags: a tenant's tags, their attachment to path parts, and the list filters.

A tag holds for its path part and everything below it: folder -> subfolders -> definitions in them ->
their runs -> the runs' folders and documents. The list filters compute, in one recursive query per
filter, the path parts a set of tags covers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, delete, func, or_, select, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Document, Folder, Run, V1Definition, V1PathPartTag, V1Tag


def _covered(tenant_id: uuid.UUID, tag_ids: Sequence[uuid.UUID], name: str) -> Any:
    """The path parts carrying one of the tags, directly or from an ancestor folder (folders only
    inherit here; definitions and runs are matched against this set by the callers)."""
    scope = (
        select(V1PathPartTag.path_part_id.label("pp"))
        .where(V1PathPartTag.tenant_id == tenant_id, V1PathPartTag.tag_id.in_(tag_ids))
        .cte(name, recursive=True)
    )
    return scope.union(select(Folder.path_part_id).join(scope, Folder.parent_path_part_id == scope.c.pp))


def definition_tagged(tenant_id: uuid.UUID, tag_ids: Sequence[uuid.UUID], name: str) -> ColumnElement[bool]:
    """A `V1Definition` row carries one of the tags (its own, or its folder's or an ancestor's)."""
    covered = select(_covered(tenant_id, tag_ids, name).c.pp)
    return or_(V1Definition.path_part_id.in_(covered), V1Definition.parent_path_part_id.in_(covered))


def run_tagged(tenant_id: uuid.UUID, tag_ids: Sequence[uuid.UUID], name: str) -> ColumnElement[bool]:
    """A `Run` row carries one of the tags (its own, or its definition's, inherited as above)."""
    covered = select(_covered(tenant_id, tag_ids, name).c.pp)
    definitions = select(V1Definition.workflow_id).where(
        or_(V1Definition.path_part_id.in_(covered), V1Definition.parent_path_part_id.in_(covered))
    )
    return or_(Run.path_part_id.in_(covered), Run.workflow_id.in_(definitions))


# -- tags ----------------------------------------------------------------------------------------------


async def tag(session: AsyncSession, tenant_id: uuid.UUID, tag_id: uuid.UUID) -> V1Tag | None:
    return await session.scalar(select(V1Tag).where(V1Tag.id == tag_id, V1Tag.tenant_id == tenant_id))


async def name_taken(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> bool:
    q = select(V1Tag.id).where(V1Tag.tenant_id == tenant_id, func.lower(V1Tag.name) == name.lower())
    if exclude is not None:
        q = q.where(V1Tag.id != exclude)
    return await session.scalar(q.limit(1)) is not None


async def list_tags(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    name_like: str | None,
    sort_by: str,
    sort_dir: str | None,
    limit: int,
    offset: int,
    created_after: datetime | None,
    created_before: datetime | None,
    updated_after: datetime | None,
    updated_before: datetime | None,
) -> tuple[list[V1Tag], int]:
    q = select(V1Tag).where(V1Tag.tenant_id == tenant_id)
    if name_like:
        q = q.where(V1Tag.name.ilike(f"%{name_like}%"))
    for moment, after, before in (
        (V1Tag.created_at, created_after, created_before),
        (V1Tag.updated_at, updated_after, updated_before),
    ):
        if after is not None:
            q = q.where(moment >= after)
        if before is not None:
            q = q.where(moment < before)
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    column: Any = V1Tag.created_at if sort_by == "CREATED_AT" else func.lower(V1Tag.name)
    desc = (sort_dir or ("DESC" if sort_by == "CREATED_AT" else "ASC")) == "DESC"
    q = q.order_by(column.desc() if desc else column.asc(), V1Tag.id).limit(limit).offset(offset)
    return list((await session.scalars(q)).all()), total


# -- path parts ----------------------------------------------------------------------------------------


async def parent_of(
    session: AsyncSession, tenant_id: uuid.UUID, path_part_id: uuid.UUID
) -> tuple[bool, uuid.UUID | None]:
    """Whether the tenant has this path part (folder, definition, run or document), and its parent."""
    run_parent = (
        select(V1Definition.path_part_id).where(V1Definition.workflow_id == Run.workflow_id).scalar_subquery()
    )
    lookups: CompoundSelect[Any] = union_all(
        select(Folder.parent_path_part_id.label("parent")).where(
            Folder.tenant_id == tenant_id, Folder.path_part_id == path_part_id
        ),
        select(V1Definition.parent_path_part_id).where(
            V1Definition.tenant_id == tenant_id, V1Definition.path_part_id == path_part_id
        ),
        select(run_parent).where(Run.tenant_id == tenant_id, Run.path_part_id == path_part_id),
        select(Document.parent_path_part_id).where(
            Document.tenant_id == tenant_id, Document.path_part_id == path_part_id
        ),
    )
    row = (await session.execute(lookups.limit(1))).first()
    return (row is not None, row[0] if row is not None else None)


async def tags_of(session: AsyncSession, path_part_ids: Sequence[uuid.UUID]) -> list[V1Tag]:
    """The tags attached to any of the path parts, each once, by name."""
    attached = select(V1PathPartTag.tag_id).where(V1PathPartTag.path_part_id.in_(path_part_ids))
    return list(
        (await session.scalars(select(V1Tag).where(V1Tag.id.in_(attached)).order_by(V1Tag.name))).all()
    )


async def set_tags(
    session: AsyncSession, tenant_id: uuid.UUID, path_part_id: uuid.UUID, tag_ids: Sequence[uuid.UUID]
) -> None:
    await session.execute(
        delete(V1PathPartTag).where(
            V1PathPartTag.path_part_id == path_part_id, V1PathPartTag.tag_id.not_in(tag_ids)
        )
    )
    if tag_ids:
        await session.execute(
            insert(V1PathPartTag)
            .values([{"path_part_id": path_part_id, "tag_id": t, "tenant_id": tenant_id} for t in tag_ids])
            .on_conflict_do_nothing()
        )


async def remove_tags(session: AsyncSession, path_part_id: uuid.UUID, tag_ids: Sequence[uuid.UUID]) -> None:
    await session.execute(
        delete(V1PathPartTag).where(
            V1PathPartTag.path_part_id == path_part_id, V1PathPartTag.tag_id.in_(tag_ids)
        )
    )


async def known_tags(
    session: AsyncSession, tenant_id: uuid.UUID, tag_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await session.scalars(select(V1Tag.id).where(V1Tag.tenant_id == tenant_id, V1Tag.id.in_(tag_ids)))
    return set(rows.all())


async def delete_tag(session: AsyncSession, tag: V1Tag) -> None:
    """Deleting a tag detaches it everywhere (FK cascade)."""
    await session.delete(tag)
    await session.flush()
