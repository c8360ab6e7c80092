"""v1 definition schedules through the unmodified ksapi client: each scheduled definition is one Temporal
Schedule (calendar in the schedule's IANA zone), paused, updated and deleted with the definition, and a
firing creates and starts a run as a user's create + start would."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import ksapi
import pytest
from ksapi.exceptions import UnprocessableEntityException
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleDescription, ScheduleRange
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from core.v1_schedules import CATCHUP_WINDOW, schedule_id
from tests.conftest import Stack, Tenant
from tests.e2e.v1_client import V1, new_definition, poll, raw, settled

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def temporal(stack: Stack) -> AsyncIterator[Client]:
    yield await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)


async def describe(temporal: Client, definition_id: Any) -> ScheduleDescription:
    return await temporal.get_schedule_handle(schedule_id(definition_id)).describe()


async def schedule_is_gone(temporal: Client, definition_id: Any) -> bool:
    try:
        await describe(temporal, definition_id)
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


def update_request(d: Any, **schedule: Any) -> ksapi.UpdateWorkflowDefinitionRequest:
    return ksapi.UpdateWorkflowDefinitionRequest(
        name=d.name,
        is_active=schedule.pop("is_active", True),
        approval_required=d.approval_required,
        **schedule,
    )


async def test_a_daily_schedule_fires_at_its_local_wall_time_in_its_zone(
    v1: V1, root: uuid.UUID, temporal: Client
) -> None:
    first = datetime(2030, 1, 6, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    d = new_definition(
        v1, root, schedule_cadence="DAILY", schedule_start_at=first, schedule_timezone="Asia/Shanghai"
    )
    assert (d.schedule_cadence, d.schedule_timezone) == (ksapi.ScheduleCadence.DAILY, "Asia/Shanghai")
    assert d.schedule_start_at == first
    got = v1.defs.get_workflow_definition(d.id)
    assert (got.schedule_cadence, got.schedule_start_at, got.schedule_timezone) == (
        ksapi.ScheduleCadence.DAILY,
        first,
        "Asia/Shanghai",
    )

    desc = await describe(temporal, d.id)
    spec = desc.schedule.spec
    assert spec.time_zone_name == "Asia/Shanghai"
    (calendar,) = spec.calendars
    assert (calendar.hour, calendar.minute, calendar.second) == (
        (ScheduleRange(9),),
        (ScheduleRange(30),),
        (ScheduleRange(0),),
    )
    assert desc.schedule.state.paused is False
    assert desc.schedule.policy.catchup_window == CATCHUP_WINDOW
    times = desc.info.next_action_times[:3]
    assert times == [first, first + timedelta(days=1), first + timedelta(days=2)]


async def test_a_weekly_schedule_inherits_the_tenant_timezone_and_keeps_its_weekday(
    v1: V1, root: uuid.UUID, temporal: Client
) -> None:
    first = datetime(2030, 1, 9, 7, 0, tzinfo=UTC)  # a Wednesday
    d = new_definition(v1, root, schedule_cadence="WEEKLY", schedule_start_at=first)
    assert d.schedule_timezone == "UTC"  # the tenant's timezone, resolved when armed
    desc = await describe(temporal, d.id)
    (calendar,) = desc.schedule.spec.calendars
    assert calendar.day_of_week == (ScheduleRange(3),)  # Temporal: Sunday = 0
    times = desc.info.next_action_times[:3]
    assert times == [first + timedelta(weeks=n) for n in range(3)]


async def test_a_monthly_schedule_keeps_its_local_day_and_time_across_a_dst_change(
    v1: V1, root: uuid.UUID, temporal: Client
) -> None:
    first = datetime(2030, 2, 15, 9, 0, tzinfo=UTC)  # 10:00 in Paris (CET); summer time from March
    d = new_definition(
        v1, root, schedule_cadence="MONTHLY", schedule_start_at=first, schedule_timezone="Europe/Paris"
    )
    desc = await describe(temporal, d.id)
    (calendar,) = desc.schedule.spec.calendars
    assert calendar.day_of_month == (ScheduleRange(15),)
    assert desc.info.next_action_times[:3] == [
        first,
        datetime(2030, 3, 15, 9, 0, tzinfo=UTC),
        datetime(2030, 4, 15, 8, 0, tzinfo=UTC),  # still 10:00 local, in CEST
    ]


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({"schedule_timezone": "+08:00"}, "not an offset"),
        ({"schedule_timezone": "UTC+8"}, "not an offset"),
        ({"schedule_timezone": "Mars/Olympus"}, "unknown IANA zone"),
        ({"schedule_cadence": "MONTHLY", "schedule_start_at": datetime(2030, 1, 29, 12, tzinfo=UTC)}, "28th"),
        ({"schedule_cadence": None}, "need a schedule_cadence"),
    ],
)
def test_a_schedule_the_service_cannot_keep_is_422_and_nothing_is_created(
    v1: V1, root: uuid.UUID, schedule: dict[str, Any], problem: str
) -> None:
    fields: dict[str, Any] = {
        "schedule_cadence": "DAILY",
        "schedule_start_at": datetime(2030, 1, 1, tzinfo=UTC),
    }
    fields.update(schedule)
    name = f"wf-{uuid.uuid4().hex[:8]}"
    with pytest.raises(UnprocessableEntityException) as caught:
        v1.defs.create_workflow_definition(
            ksapi.CreateWorkflowDefinitionRequest(
                name=name, parent_path_part_id=root, approval_required=False, **fields
            )
        )
    assert problem in (caught.value.body or "")
    assert v1.defs.list_workflow_definitions(search=name).total == 0


async def test_the_schedule_is_paused_updated_and_removed_with_the_definition(
    v1: V1, root: uuid.UUID, temporal: Client
) -> None:
    first = datetime(2030, 1, 6, 8, 0, tzinfo=UTC)
    d = new_definition(v1, root)
    assert d.schedule_cadence is None and d.schedule_timezone is None
    assert await schedule_is_gone(temporal, d.id)

    d = v1.defs.update_workflow_definition(
        d.id, update_request(d, schedule_cadence="DAILY", schedule_start_at=first, is_active=False)
    )
    desc = await describe(temporal, d.id)
    assert desc.schedule.state.paused is True
    assert (d.schedule_cadence, d.schedule_timezone) == (ksapi.ScheduleCadence.DAILY, "UTC")

    d = v1.defs.update_workflow_definition(
        d.id,
        update_request(
            d, schedule_cadence="WEEKLY", schedule_start_at=first, schedule_timezone="America/New_York"
        ),
    )
    desc = await describe(temporal, d.id)
    assert desc.schedule.state.paused is False
    assert desc.schedule.spec.time_zone_name == "America/New_York"
    (calendar,) = desc.schedule.spec.calendars
    assert (calendar.hour, calendar.day_of_week) == ((ScheduleRange(3),), (ScheduleRange(0),))  # Sunday 03:00

    with pytest.raises(UnprocessableEntityException):
        v1.defs.update_workflow_definition(d.id, update_request(d, schedule_cadence="DAILY"))  # no start
    assert (await describe(temporal, d.id)).schedule.spec.time_zone_name == "America/New_York"

    d = v1.defs.update_workflow_definition(d.id, update_request(d))  # PUT without a schedule: unscheduled
    assert d.schedule_cadence is None and d.schedule_start_at is None and d.schedule_timezone is None
    assert await schedule_is_gone(temporal, d.id)

    d = v1.defs.update_workflow_definition(
        d.id, update_request(d, schedule_cadence="DAILY", schedule_start_at=first)
    )
    assert not await schedule_is_gone(temporal, d.id)
    v1.defs.delete_workflow_definition(d.id)
    assert await schedule_is_gone(temporal, d.id)


async def test_a_firing_creates_and_starts_a_run_recorded_as_started_by_the_schedule(
    v1: V1, root: uuid.UUID, temporal: Client, live_api: str, tenant: Tenant
) -> None:
    d = new_definition(v1, root, schedule_cadence="DAILY", schedule_start_at=datetime(2030, 1, 1, tzinfo=UTC))
    await temporal.get_schedule_handle(schedule_id(d.id)).trigger()
    runs = poll(lambda: v1.defs.list_workflow_runs(d.id), lambda page: page.total == 1).items
    run = settled(v1, runs[0].id, "COMPLETED")
    assert run.triggered_by.user_id == tenant.user_id  # the definition's owner
    assert run.run_snapshot is not None and run.run_snapshot.workflow_name == d.name
    assert run.started_at is not None
    with raw(live_api, tenant.key) as http:
        history = http.get(f"/run/{run.id}/state_history/").json()
    started = [h for h in history if h["reason"] == "Started"]
    assert [h["cause"] for h in started] == ["schedule"]
    # The firing is its own short execution; the run is `run-<run id>`.
    firing = await describe(temporal, d.id)
    assert firing.info.num_actions == 1
    action = firing.info.recent_actions[0].action
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    assert action.workflow_id.startswith(f"v1-scheduled-{d.id}")


async def test_a_firing_for_a_definition_deleted_behind_the_schedule_removes_the_schedule(
    v1: V1, root: uuid.UUID, temporal: Client, live_api: str, tenant: Tenant
) -> None:
    d = new_definition(v1, root, schedule_cadence="DAILY", schedule_start_at=datetime(2030, 1, 1, tzinfo=UTC))
    with raw(live_api, tenant.key) as http:  # the workflow API knows nothing of schedules
        assert http.delete(f"/wf/{d.id}/").status_code in (200, 204)
    await temporal.get_schedule_handle(schedule_id(d.id)).trigger()
    for _ in range(300):
        if await schedule_is_gone(temporal, d.id):
            break
        await asyncio.sleep(0.1)
    assert await schedule_is_gone(temporal, d.id)


async def test_a_firing_missed_while_temporal_and_the_worker_were_down_is_made_up_after_the_restart(
    v1: V1, root: uuid.UUID, stack: Stack, temporal: Client
) -> None:
    # Far enough ahead that the schedule exists before its first firing even on a loaded machine (a
    # firing time already past when the schedule is made is not a missed firing).
    first = (datetime.now(UTC) + timedelta(seconds=10)).replace(microsecond=0)
    d = new_definition(v1, root, schedule_cadence="DAILY", schedule_start_at=first)
    # Temporal's scheduler counts missed firings from its own first workflow task: killed before that task
    # ran, it starts counting after the restart and the firing is not "missed" but never due. A describe
    # answers from that task, so once it names the firing, the schedule is live.
    assert first in (await describe(temporal, d.id)).info.next_action_times
    assert datetime.now(UTC) < first - timedelta(seconds=1), "the schedule was made too late for this test"
    stack.kill_temporal()
    stack.kill_workers()
    try:
        await asyncio.sleep((first - datetime.now(UTC)).total_seconds() + 2)  # the firing time passes
    finally:
        stack.start_temporal()
        stack.start_worker()
    # Within the catch-up window, the missed firing runs once Temporal is back.
    runs = poll(lambda: v1.defs.list_workflow_runs(d.id), lambda page: page.total == 1, within=90).items
    settled(v1, runs[0].id, "COMPLETED", within=90)
