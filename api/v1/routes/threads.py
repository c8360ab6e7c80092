"""`/v1/threads`: the run threads (a run's Start opens one; follow-ups continue it) and their messages.

Free-standing threads (create, rename, delete, posting raw messages) are not modelled: those answer 400.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, NoReturn

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ClientDep, PrincipalDep, SessionDep, SettingsDep
from api.v1 import presenters as present
from api.v1 import schemas as w
from api.v1.routes.runs import Limit, Offset
from core import v1_threads as threads
from db import v1_queries as queries
from db import v1_repo as v1
from db import v1_threads as repo
from db.accounts import Principal
from errors import BadRequest, NotFound
from workflows.search_attributes import temporal_workflow_id

router = APIRouter(prefix="/v1/threads", tags=["v1 threads"])


async def _thread(session: AsyncSession, t: threads.Thread) -> tuple[w.ThreadResponse, str]:
    first = t.first
    paths = await queries.definition_paths(session, {first.workflow_id})
    _, def_path = paths.get(first.workflow_id, (None, "/"))
    title = first.name or str(first.id)
    path = v1.child_path(v1.child_path(v1.child_path(def_path, title), "discussions"), f"thread-{t.id}")
    users = await queries.users(session, {first.triggered_by})
    return (
        w.ThreadResponse(
            id=t.id,
            path_part_id=v1.derived_id(t.id, "pp"),
            title=title,
            materialized_path=path,
            tenant_id=first.tenant_id,
            owner=present.user_info(first.triggered_by, users),
            created_at=first.created_at,
            updated_at=max(r.updated_at for r in t.runs),
        ),
        path,
    )


def _message(thread: w.ThreadResponse, path: str, m: threads.Message) -> w.ThreadMessageResponse:
    return w.ThreadMessageResponse(
        id=m.id,
        path_part_id=v1.derived_id(m.id, "pp"),
        sequence=m.sequence,
        role=m.role,  # USER | ASSISTANT | SYSTEM by construction
        content=w.ThreadMessageContent(text=m.text, is_error=m.is_error),
        parent_path_id=thread.path_part_id,
        materialized_path=v1.child_path(path, str(m.sequence)),
        tenant_id=thread.tenant_id,
        author_tenant_user_id=m.author if m.role == "USER" else None,
        created_at=m.created_at,
        updated_at=m.created_at,
    )


@router.get("", response_model=w.Page[w.ThreadResponse])
async def list_threads(
    session: SessionDep,
    who: PrincipalDep,
    parent_path_part_id: uuid.UUID | None = None,
    sort_by: Literal["CREATED_AT", "UPDATED_AT"] = "CREATED_AT",
    sort_dir: Literal["ASC", "DESC"] | None = None,
    title_like: Annotated[str | None, Query(max_length=255)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
) -> w.Page[w.ThreadResponse]:
    """A run's threads (`parent_path_part_id`: the run's path part or its discussions/ folder), or the
    caller's run threads. Sorted by when each thread opened."""
    del sort_by  # a thread's activity is its runs'; both orders are by opening time here
    if title_like or updated_after or updated_before:
        raise BadRequest("title_like and updated_* filters are not supported on run threads")
    run_id = None
    if parent_path_part_id is not None:
        run = await repo.run_by_path_part(session, who.tenant_id, parent_path_part_id)
        if run is None:
            raise NotFound("Parent path part not found (threads live under runs here)")
        run_id = run.id
    ids, total = await repo.list_thread_ids(
        session,
        who.tenant_id,
        run_id=run_id,
        triggered_by=who.user_id if run_id is None else None,
        sort_dir=sort_dir or "DESC",
        limit=limit,
        offset=offset,
        created_after=created_after,
        created_before=created_before,
    )
    items = [(await _thread(session, await threads.get_thread(session, who, i)))[0] for i in ids]
    return w.Page[w.ThreadResponse](items=items, total=total, limit=limit, offset=offset)


@router.get("/{thread_id}", response_model=w.ThreadResponse)
async def get_thread(thread_id: uuid.UUID, session: SessionDep, who: PrincipalDep) -> w.ThreadResponse:
    return (await _thread(session, await threads.get_thread(session, who, thread_id)))[0]


async def _messages(
    session: AsyncSession, who: Principal, thread_id: uuid.UUID
) -> tuple[w.ThreadResponse, list[w.ThreadMessageResponse]]:
    t = await threads.get_thread(session, who, thread_id)
    shown, path = await _thread(session, t)
    return shown, [_message(shown, path, m) for m in await threads.messages(session, t)]


@router.get("/{thread_id}/messages", response_model=w.Page[w.ThreadMessageResponse])
async def list_thread_messages(
    thread_id: uuid.UUID,
    session: SessionDep,
    who: PrincipalDep,
    before: datetime | None = None,
    role: Literal["USER", "ASSISTANT", "SYSTEM"] | None = None,
    sort_dir: Literal["ASC", "DESC"] | None = None,
    with_details: bool | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> w.Page[w.ThreadMessageResponse]:
    """Newest first by default (`sort_dir=ASC`: oldest first); messages carry no execution details."""
    del with_details
    _, found = await _messages(session, who, thread_id)
    found = [
        m for m in found if (role is None or m.role == role) and (before is None or m.created_at < before)
    ]
    if (sort_dir or "DESC") == "DESC":
        found.reverse()
    return w.Page[w.ThreadMessageResponse](
        items=found[offset : offset + limit], total=len(found), limit=limit, offset=offset
    )


@router.get("/{thread_id}/messages/{message_id}", response_model=w.ThreadMessageResponse)
async def get_thread_message(
    thread_id: uuid.UUID, message_id: uuid.UUID, session: SessionDep, who: PrincipalDep
) -> w.ThreadMessageResponse:
    _, found = await _messages(session, who, thread_id)
    for m in found:
        if m.id == message_id:
            return m
    raise NotFound("Thread message not found")


@router.post("/{thread_id}/user_message", status_code=202, response_model=w.UserMessageResponse)
async def send_user_message(
    thread_id: uuid.UUID,
    body: w.UserMessageRequest,
    session: SessionDep,
    client: ClientDep,
    settings: SettingsDep,
    who: PrincipalDep,
    response: Response,
) -> w.UserMessageResponse:
    """On a finished thread: a follow-up run in it (409 `run_in_progress` while a run of it is going)."""
    if not body.input_text:
        raise BadRequest("input_text is required")
    run = await threads.send_user_message(session, client, settings, who, thread_id, body.input_text)
    response.headers["Location"] = f"/v1/workflow-runs/{run.id}"
    return w.UserMessageResponse(
        workflow_id=temporal_workflow_id(str(run.id)), user_message_id=threads.user_message_id(run.id)
    )


def _not_modelled(what: str) -> NoReturn:
    raise BadRequest(f"{what} is not supported: threads here are run threads, opened by starting a run")


@router.post("")
async def create_thread() -> None:
    _not_modelled("Creating a free-standing thread")


@router.patch("/{thread_id}")
async def update_thread(thread_id: uuid.UUID) -> None:
    del thread_id
    _not_modelled("Renaming or moving a thread")


@router.delete("/{thread_id}")
async def delete_thread(thread_id: uuid.UUID) -> None:
    del thread_id
    _not_modelled("Deleting a run thread (delete the run)")


@router.post("/{thread_id}/messages")
async def create_thread_message(thread_id: uuid.UUID) -> None:
    del thread_id
    _not_modelled("Posting a raw thread message (send a user message)")


@router.get("/{thread_id}/stream")
async def stream_thread(thread_id: uuid.UUID) -> None:
    del thread_id
    _not_modelled("Streaming a thread (read its messages)")
