"""v1 definition schedules: one Temporal Schedule per scheduled definition, and what a firing does.

The recurrence is a Temporal calendar read in the schedule's IANA zone: the local wall time (and weekday
or day of month) of `schedule_start_at` in that zone, so a daily 09:00 stays 09:00 across DST changes.
A firing starts `ScheduledRunWorkflow`, whose one activity calls `fire`: create a draft and start it as
a user's create + start would, recorded as started by the schedule (`Cause.SCHEDULE`).

Policies (stated in docs/v1-api.md):
- overlap ALLOW_ALL: the firing workflow only creates and starts a run (seconds), and each firing makes
  its own run, so a run that outlasts the period does not hold back the next one;
- catch-up window CATCHUP_WINDOW: firings missed while Temporal was down are made up when it is back if
  they are at most that old; older ones are skipped (a daily report should not run five times at once).
"""

from __future__ import annotations

import logging
import re
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from db.models import V1Definition
from db.v1_schedules import tenant_timezone
from errors import InvalidInput, Unavailable
from settings import Settings
from workflows.schedule_workflow import ScheduledFiring, ScheduledRunWorkflow

log = logging.getLogger(__name__)

CADENCES = ("DAILY", "WEEKLY", "MONTHLY")
CATCHUP_WINDOW = timedelta(hours=1)
_OFFSET = re.compile(r"^(?:UTC|GMT|Z)?\s*[+-]\d{1,2}(?::?\d{2})?$|^Z$", re.IGNORECASE)


def schedule_id(definition_id: uuid.UUID | str) -> str:
    return f"v1-definition-{definition_id}"


def firing_workflow_id(definition_id: uuid.UUID | str) -> str:
    """Temporal appends the firing time to it, so each firing's id (the draft's idempotency key) is unique."""
    return f"v1-scheduled-{definition_id}"


@dataclass(frozen=True)
class ScheduleFields:
    cadence: str
    start_at: datetime
    timezone: str


def resolve(
    cadence: str | None, start_at: datetime | None, timezone: str | None, tenant_timezone: str
) -> ScheduleFields | None:
    """The schedule a definition asks for (None: unscheduled), its timezone resolved.

    Raises:
        InvalidInput: a field without a cadence, no first occurrence, an ISO offset or unknown zone,
            a MONTHLY schedule after the 28th.
    """
    if cadence is None:
        if start_at is not None or timezone is not None:
            raise InvalidInput("schedule_start_at and schedule_timezone need a schedule_cadence")
        return None
    if cadence not in CADENCES:
        raise InvalidInput(f"schedule_cadence must be one of {', '.join(CADENCES)}")
    if start_at is None:
        raise InvalidInput("schedule_start_at is required with schedule_cadence (the first occurrence)")
    zone_name = timezone if timezone is not None else tenant_timezone
    zone = _zone(zone_name)
    local = start_at.replace(tzinfo=zone) if start_at.tzinfo is None else start_at.astimezone(zone)
    # The calendar fires on whole seconds: a fraction would put the first occurrence a period later.
    local = local.replace(microsecond=0)
    if cadence == "MONTHLY" and local.day > 28:
        raise InvalidInput(
            f"A MONTHLY schedule must land on or before the 28th (schedule_start_at is the {local.day}th"
            f" in {zone_name}); Temporal would skip the months that are too short"
        )
    return ScheduleFields(cadence, local, zone_name)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    if _OFFSET.match(name.strip()):
        raise InvalidInput(
            f"schedule_timezone must be an IANA zone name such as 'Europe/Paris', not an offset ('{name}')"
        )
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"schedule_timezone: unknown IANA zone '{name}'") from None


def spec_of(fields: ScheduleFields) -> ScheduleSpec:
    """The calendar: the local wall time every day, on the local weekday, or on the local day of month."""
    local = fields.start_at.astimezone(zoneinfo.ZoneInfo(fields.timezone))
    calendar = ScheduleCalendarSpec(
        second=(ScheduleRange(local.second),),
        minute=(ScheduleRange(local.minute),),
        hour=(ScheduleRange(local.hour),),
        day_of_month=(ScheduleRange(local.day),) if fields.cadence == "MONTHLY" else (ScheduleRange(1, 31),),
        # Temporal counts weekdays from Sunday = 0; Python from Monday = 0.
        day_of_week=(ScheduleRange((local.weekday() + 1) % 7),)
        if fields.cadence == "WEEKLY"
        else (ScheduleRange(0, 6),),
    )
    # start_at is inclusive: the first occurrence itself fires.
    return ScheduleSpec(calendars=[calendar], start_at=fields.start_at, time_zone_name=fields.timezone)


def _schedule(d: V1Definition, fields: ScheduleFields, settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ScheduledRunWorkflow.run,
            ScheduledFiring(definition_id=str(d.workflow_id)),
            id=firing_workflow_id(d.workflow_id),
            task_queue=settings.temporal_task_queue,
            # The firing only creates and starts a run; a worker away longer than this misses it.
            execution_timeout=timedelta(hours=1),
        ),
        spec=spec_of(fields),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(paused=not d.is_active, note="definition inactive" if not d.is_active else None),
    )


def stored_fields(d: V1Definition) -> ScheduleFields | None:
    if d.schedule_cadence is None or d.schedule_start_at is None or d.schedule_timezone is None:
        return None
    return ScheduleFields(d.schedule_cadence, d.schedule_start_at, d.schedule_timezone)


async def arm(client: Client, settings: Settings, d: V1Definition) -> None:
    """Make the definition's Temporal Schedule match its stored fields: create, update (incl. pause when
    the definition is inactive) or delete it."""
    fields = stored_fields(d)
    if fields is None:
        await disarm(client, d.workflow_id)
        return
    schedule = _schedule(d, fields, settings)
    try:
        try:
            await client.create_schedule(schedule_id(d.workflow_id), schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id(d.workflow_id)).update(replace)
    except RPCError as err:
        raise Unavailable(f"Temporal refused the schedule: {err.message}") from err


async def disarm(client: Client, definition_id: uuid.UUID) -> None:
    try:
        await client.get_schedule_handle(schedule_id(definition_id)).delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise Unavailable(f"Temporal refused to delete the schedule: {err.message}") from err


async def apply(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    d: V1Definition,
    cadence: str | None,
    start_at: datetime | None,
    timezone: str | None,
) -> None:
    """Store the schedule a create or PUT asks for and arm its Temporal Schedule (also after a PUT that
    only toggled `is_active`: the schedule pauses with the definition). Called inside the request's
    transaction, so a refused schedule rolls the whole change back; a schedule left behind by a commit
    that then failed removes itself at its first firing (`fire` finds no scheduled definition).

    Raises:
        InvalidInput: see `resolve`; a template (templates cannot run).
        Unavailable: Temporal refused the schedule.
    """
    fields = resolve(cadence, start_at, timezone, await tenant_timezone(session, d.tenant_id))
    if fields is not None and d.is_template:
        raise InvalidInput("A template cannot be scheduled (templates cannot have runs)")
    had = stored_fields(d) is not None
    d.schedule_cadence = fields.cadence if fields else None
    d.schedule_start_at = fields.start_at if fields else None
    d.schedule_timezone = fields.timezone if fields else None
    await session.flush()
    if fields is not None or had:
        await arm(client, settings, d)
