"""One firing of a definition's schedule: create a draft and start it, as a user's create + start would
(same snapshot, inputs and folders), triggered by the definition's owner and recorded as started by the
schedule. Called by the `fire_schedule` activity; retried firings find the run they made."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core import v1_drafts as drafts
from core import v1_runs
from core import v1_schedules as schedules
from core.v1_dispatch import start_again
from db import v1_definition_repo
from db import v1_repo as v1
from db.v1_schedules import acting_principal
from run_status import Cause, DraftState, RunStatus
from settings import Settings

log = logging.getLogger(__name__)


async def fire(
    session: AsyncSession, client: Client, settings: Settings, definition_id: uuid.UUID, firing_id: str
) -> str | None:
    """The id of the run this firing created and started; None if there is nothing to fire."""
    d = await v1_definition_repo.fields(session, definition_id)
    if d is None or d.schedule_cadence is None:
        # Deleted (or unscheduled) by a path that could not reach Temporal: no schedule should remain.
        await schedules.disarm(client, definition_id)
        return None
    who = await acting_principal(session, d)
    if who is None:
        log.warning("schedule of definition %s fired in a tenant without users", definition_id)
        return None
    run = await drafts.create_run(
        session, client, settings, who, definition_id, drafts.CreateRunForm(idempotency_key=firing_id), []
    )
    if run.draft_state == DraftState.NOT_STARTED:
        await v1_runs.launch(
            session, client, settings, run, None, [v1.NOT_STARTED], eager=False, cause=Cause.SCHEDULE
        )
    elif run.draft_state is None and run.status == RunStatus.PENDING and run.snapshot:
        # Dispatched by an earlier attempt that did not get to start it (the start is idempotent).
        await start_again(session, client, settings, run, eager=False, restart=False)
    return str(run.id)
