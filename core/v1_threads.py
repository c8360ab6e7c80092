"""v1 run threads: a run's Start opens its thread (one to one); the thread tells the story of its runs as
messages, read from the runs themselves (the user message, each pause and its decision, the outputs, the
error or the stop), so nothing the engine writes has to be mirrored. A USER message on a finished thread
starts a follow-up run of the same definition in the same thread, with the earlier messages as the
InputNode's `message_history`; while a run of the thread is in progress, a USER message is 409.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core import access
from core import v1_drafts as drafts
from core.v1_runs import launch, state_of
from db import v1_repo as v1
from db import v1_threads as repo
from db.accounts import Principal
from db.models import Pause, Run
from errors import Conflict, NotFound
from run_status import ExecutionState
from settings import Settings

RUN_IN_PROGRESS = "run_in_progress"


@dataclass(frozen=True)
class Message:
    id: uuid.UUID
    sequence: int
    role: str  # USER | ASSISTANT | SYSTEM
    text: str
    created_at: datetime
    author: uuid.UUID | None = None
    is_error: bool | None = None


@dataclass(frozen=True)
class Thread:
    id: uuid.UUID
    runs: list[Run]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def last(self) -> Run:
        return self.runs[-1]


async def get_thread(session: AsyncSession, who: Principal, thread_id: uuid.UUID) -> Thread:
    runs = await repo.thread_runs(session, who.tenant_id, thread_id)
    if not runs:
        raise NotFound("Thread not found")
    return Thread(thread_id, runs)


def user_message_id(run_id: uuid.UUID) -> uuid.UUID:
    return v1.derived_id(run_id, "message/user")


def _story(
    run: Run, pauses: list[Pause]
) -> list[tuple[str, str, datetime, uuid.UUID, uuid.UUID | None, bool | None]]:
    """(role, text, at, id, author, is_error) for one run, in the order things happened."""
    told: list[tuple[str, str, datetime, uuid.UUID, uuid.UUID | None, bool | None]] = []
    message = (run.snapshot or {}).get("user_message")
    if message:
        told.append(("USER", str(message), run.start_time, user_message_id(run.id), run.triggered_by, None))
    for p in pauses:
        ask = p.message or f"Waiting for a decision at '{p.node_id}'"
        told.append(
            ("ASSISTANT", ask, p.pause_time, v1.derived_id(run.id, f"message/pause/{p.seq}"), None, None)
        )
        if p.resume_time is not None:
            answer = " ".join(filter(None, [p.resume_action, p.comments]))
            told.append(
                (
                    "USER",
                    answer,
                    p.resume_time,
                    v1.derived_id(run.id, f"message/decision/{p.seq}"),
                    p.decided_by,
                    None,
                )
            )
    state = state_of(run)
    end = run.end_time or run.updated_at
    if state == ExecutionState.COMPLETED:
        text = json.dumps(run.outputs or {}, sort_keys=True, default=str)
        told.append(("ASSISTANT", text, end, v1.derived_id(run.id, "message/outputs"), None, None))
    elif state == ExecutionState.FAILED:
        told.append(
            (
                "ASSISTANT",
                run.error or "The run failed",
                end,
                v1.derived_id(run.id, "message/error"),
                None,
                True,
            )
        )
    return told


async def messages(session: AsyncSession, thread: Thread) -> list[Message]:
    """The thread's messages, oldest first, numbered from 1."""
    pauses = await repo.pauses(session, [r.id for r in thread.runs])
    told = [line for run in thread.runs for line in _story(run, pauses.get(run.id, []))]
    return [
        Message(id=mid, sequence=n, role=role, text=text, created_at=at, author=author, is_error=err)
        for n, (role, text, at, mid, author, err) in enumerate(told, start=1)
    ]


async def _join_unless_busy(session: AsyncSession, thread_id: uuid.UUID, mine: Run) -> None:
    """Put the new draft in the thread, serialized per thread: of messages racing past the first check,
    one joins; the others find its run unfinished, drop their draft and get the same 409.

    Raises:
        Conflict: `run_in_progress`.
    """
    run_id, tenant_id = mine.id, mine.tenant_id
    await repo.lock_thread(session, thread_id)  # until the commit below
    busy = [r for r in await repo.thread_runs(session, tenant_id, thread_id) if not _finished(r)]
    if busy:
        await repo.discard_run(session, run_id)
        await session.commit()
        raise Conflict(
            f"{RUN_IN_PROGRESS}: run {busy[0].id} of this thread is {state_of(busy[0])}; wait or stop it"
        )
    await repo.join(session, tenant_id, run_id, thread_id)
    await session.commit()


def _finished(run: Run) -> bool:
    return state_of(run) in (ExecutionState.COMPLETED, ExecutionState.FAILED)


def history(told: list[Message]) -> list[dict[str, Any]]:
    """PySpur's chat convention for the InputNode's `message_history`."""
    return [{"role": m.role.lower(), "content": m.text} for m in told if m.role in ("USER", "ASSISTANT")]


async def send_user_message(
    session: AsyncSession, client: Client, settings: Settings, who: Principal, thread_id: uuid.UUID, text: str
) -> Run:
    """Start a follow-up run of the thread's definition in this thread; the message is its user message.

    Raises:
        Conflict: `run_in_progress` while a run of the thread has not finished (the thread is read-only).
        Forbidden: not the thread's triggering user, an OWNER or an ADMIN.
    """
    thread = await get_thread(session, who, thread_id)
    access.ensure_may_change_run(who, thread.first.triggered_by)
    busy = [r for r in thread.runs if not _finished(r)]
    if busy:
        raise Conflict(
            f"{RUN_IN_PROGRESS}: run {busy[0].id} of this thread is {state_of(busy[0])}; wait or stop it"
        )
    earlier = history(await messages(session, thread))
    run = await drafts.create_run(
        session, client, settings, who, thread.last.workflow_id, drafts.CreateRunForm(), []
    )
    await _join_unless_busy(session, thread_id, run)
    await launch(
        session,
        client,
        settings,
        run,
        text,
        [v1.NOT_STARTED],
        False,
        cause=str(who.user_id),
        message_history=earlier,
    )
    return run
