"""The activity of a schedule firing; the run rules (`core.v1_schedule_firing.fire`) are injected by the
process, as for the ingestion activities."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.ingest_activities import RunStarts
from errors import DomainError
from settings import Settings
from workflows.schedule_workflow import FireInput, ScheduleActivitiesContract


class ScheduleActivities(ScheduleActivitiesContract):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: Client,
        settings: Settings,
        starts: RunStarts,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._settings = settings
        self._starts = starts

    async def fire_schedule(self, arg: FireInput) -> str | None:
        if self._starts.fire is None:
            raise RuntimeError("this worker was built without the schedule firing rule")
        async with self._sessions() as session:
            try:
                return await self._starts.fire(
                    session, self._client, self._settings, uuid.UUID(arg.definition_id), arg.firing_id
                )
            except DomainError as err:
                # The run rules refused (a template, a folder gone): trying again would be refused too.
                raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
