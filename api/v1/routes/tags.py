"""`/v1/tags` and `/v1/path-parts/{id}/tags`: a tenant's tags and the tags on its folders, definitions,
runs and documents (the list filters `include_tag_ids` / `exclude_tag_ids` read them)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import PrincipalDep, SessionDep
from api.v1 import schemas as w
from api.v1.routes.runs import Limit, Offset
from core import v1_tags
from db import v1_tags as repo
from db.models import V1Tag

tags = APIRouter(prefix="/v1/tags", tags=["v1 tags"])
path_parts = APIRouter(prefix="/v1/path-parts", tags=["v1 tags"])


def _tag(t: V1Tag) -> w.TagResponse:
    return w.TagResponse.model_validate(t, from_attributes=True)


def _tags(found: Sequence[V1Tag]) -> w.PathPartTagsResponse:
    return w.PathPartTagsResponse(tags=[_tag(t) for t in found])


@tags.post("", status_code=201, response_model=w.TagResponse)
async def create_tag(body: w.CreateTagRequest, session: SessionDep, who: PrincipalDep) -> w.TagResponse:
    return _tag(await v1_tags.create_tag(session, who, body.name, body.color, body.description))


@tags.get("", response_model=w.Page[w.TagResponse])
async def list_tags(
    session: SessionDep,
    who: PrincipalDep,
    sort_by: Literal["NAME", "CREATED_AT"] = "NAME",
    sort_dir: Literal["ASC", "DESC"] | None = None,
    name_like: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
) -> w.Page[w.TagResponse]:
    found, total = await repo.list_tags(
        session,
        who.tenant_id,
        name_like=name_like,
        sort_by=sort_by,
        sort_dir=sort_dir,
        limit=limit,
        offset=offset,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
    )
    return w.Page[w.TagResponse](items=[_tag(t) for t in found], total=total, limit=limit, offset=offset)


@tags.get("/{tag_id}", response_model=w.TagResponse)
async def get_tag(tag_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> w.TagResponse:
    return _tag(await v1_tags.get_tag(session, who, tag_id))


@tags.patch("/{tag_id}", response_model=w.TagResponse)
async def update_tag(
    tag_id: uuid.UUID, body: w.UpdateTagRequest, session: SessionDep, who: PrincipalDep
) -> w.TagResponse:
    return _tag(await v1_tags.update_tag(session, who, tag_id, body.name, body.color, body.description))


@tags.delete("/{tag_id}", status_code=204)
async def delete_tag(tag_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> Response:
    await v1_tags.delete_tag(session, who, tag_id)
    return Response(status_code=204)


@path_parts.get("/{path_part_id}/tags", response_model=w.PathPartTagsResponse)
async def get_path_part_tags(
    path_part_id: uuid.UUID, session: SessionDep, who: PrincipalDep, include_inherited: bool = False
) -> w.PathPartTagsResponse:
    """Its own tags, or (`include_inherited`) those of it and every ancestor, each once."""
    return _tags(await v1_tags.path_part_tags(session, who, path_part_id, include_inherited))


@path_parts.post("/{path_part_id}/tags", response_model=w.PathPartTagsResponse)
async def set_path_part_tags(
    path_part_id: uuid.UUID, body: w.BulkTagRequest, session: SessionDep, who: PrincipalDep
) -> w.PathPartTagsResponse:
    """Replace its tags with `tag_ids` (empty: clear)."""
    return _tags(await v1_tags.set_path_part_tags(session, who, path_part_id, body.tag_ids))


@path_parts.delete("/{path_part_id}/tags", response_model=w.PathPartTagsResponse)
async def remove_path_part_tags(
    path_part_id: uuid.UUID, body: w.BulkTagRequest, session: SessionDep, who: PrincipalDep
) -> w.PathPartTagsResponse:
    return _tags(await v1_tags.remove_path_part_tags(session, who, path_part_id, body.tag_ids))
