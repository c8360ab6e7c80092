"""v1 tags: a tenant's tags (names unique per tenant, case-insensitively) and the tags on path parts.

Every tenant member may tag anything of the tenant (per-folder permissions are not modelled); another
tenant's path parts are 404 and another tenant's tags 400, as unknown ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from db import v1_tags as repo
from db.accounts import Principal
from db.models import V1Tag, utcnow
from errors import Conflict, NotFound

# A path tree deeper than this is a cycle (it cannot be made through the API).
_MAX_DEPTH = 256


async def create_tag(
    session: AsyncSession, who: Principal, name: str, color: str | None, description: str | None
) -> V1Tag:
    if await repo.name_taken(session, who.tenant_id, name):
        raise Conflict(f"A tag named '{name}' already exists")
    tag = V1Tag(
        tenant_id=who.tenant_id, name=name, color=(color or "000000").upper(), description=description
    )
    session.add(tag)
    await session.flush()
    return tag


async def get_tag(session: AsyncSession, who: Principal, tag_id: uuid.UUID) -> V1Tag:
    tag = await repo.tag(session, who.tenant_id, tag_id)
    if tag is None:
        raise NotFound("Tag not found")
    return tag


async def update_tag(
    session: AsyncSession,
    who: Principal,
    tag_id: uuid.UUID,
    name: str | None,
    color: str | None,
    description: str | None,
) -> V1Tag:
    """PATCH: unset fields keep their value; an empty description clears it."""
    tag = await get_tag(session, who, tag_id)
    if name is not None and name != tag.name:
        if await repo.name_taken(session, who.tenant_id, name, exclude=tag.id):
            raise Conflict(f"A tag named '{name}' already exists")
        tag.name = name
    if color is not None:
        tag.color = color.upper()
    if description is not None:
        tag.description = description or None
    tag.updated_at = utcnow()
    await session.flush()
    return tag


async def delete_tag(session: AsyncSession, who: Principal, tag_id: uuid.UUID) -> None:
    await repo.delete_tag(session, await get_tag(session, who, tag_id))


async def _ancestry(session: AsyncSession, who: Principal, path_part_id: uuid.UUID) -> list[uuid.UUID]:
    """The path part and its ancestors up to the root. Raises NotFound for another tenant's or none."""
    found, parent = await repo.parent_of(session, who.tenant_id, path_part_id)
    if not found:
        raise NotFound("Path part not found")
    chain = [path_part_id]
    while parent is not None and len(chain) < _MAX_DEPTH:
        chain.append(parent)
        _, parent = await repo.parent_of(session, who.tenant_id, parent)
    return chain


async def path_part_tags(
    session: AsyncSession, who: Principal, path_part_id: uuid.UUID, include_inherited: bool
) -> list[V1Tag]:
    chain = await _ancestry(session, who, path_part_id)
    return await repo.tags_of(session, chain if include_inherited else chain[:1])


async def set_path_part_tags(
    session: AsyncSession, who: Principal, path_part_id: uuid.UUID, tag_ids: Sequence[uuid.UUID]
) -> list[V1Tag]:
    """Replace the path part's own tags. Raises NotFound naming a tag the tenant does not have (as for any
    id of another tenant)."""
    await _ancestry(session, who, path_part_id)
    unknown = set(tag_ids) - await repo.known_tags(session, who.tenant_id, tag_ids)
    if unknown:
        raise NotFound(f"No such tag: {', '.join(sorted(str(t) for t in unknown))}")
    await repo.set_tags(session, who.tenant_id, path_part_id, list(dict.fromkeys(tag_ids)))
    return await repo.tags_of(session, [path_part_id])


async def remove_path_part_tags(
    session: AsyncSession, who: Principal, path_part_id: uuid.UUID, tag_ids: Sequence[uuid.UUID]
) -> list[V1Tag]:
    """Detach the tags; tags not attached are ignored."""
    await _ancestry(session, who, path_part_id)
    await repo.remove_tags(session, path_part_id, tag_ids)
    return await repo.tags_of(session, [path_part_id])
