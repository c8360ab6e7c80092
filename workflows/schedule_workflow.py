"""`ScheduledRunWorkflow`: what one firing of a v1 definition's Temporal Schedule runs.

It only calls `fire_schedule`, which creates and starts the run through the v1 run rules; the run is its
own `RunWorkflow` execution (`run-<run id>`), so a firing closes in seconds whatever the run does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import _ActivityContract


class ScheduledFiring(BaseModel):
    """The schedule action's argument."""

    definition_id: str


class FireInput(BaseModel):
    definition_id: str
    # The firing's workflow id (the schedule's action id plus the firing time): the draft's idempotency
    # key, so a retried activity finds the run it made instead of making another.
    firing_id: str


class ScheduleActivitiesContract(_ActivityContract, ABC):
    """Implemented by `activities.schedule_activities.ScheduleActivities`."""

    @activity.defn(name="fire_schedule")
    @abstractmethod
    async def fire_schedule(self, arg: FireInput) -> str | None:
        """The id of the run the firing created and started; None when the definition is gone or
        no longer scheduled."""
        raise NotImplementedError


@workflow.defn(name="ScheduledRunWorkflow")
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, firing: ScheduledFiring) -> str | None:
        return await workflow.execute_activity_method(
            ScheduleActivitiesContract.fire_schedule,
            FireInput(definition_id=firing.definition_id, firing_id=workflow.info().workflow_id),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=20),
        )
