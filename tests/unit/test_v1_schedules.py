"""The schedule a definition asks for: timezone resolution, refusals, and the Temporal calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import ScheduleRange

from core.v1_schedules import resolve, spec_of
from errors import InvalidInput


def test_a_naive_first_occurrence_is_a_wall_time_in_the_zone() -> None:
    naive = datetime(2030, 6, 1, 9, 15, 30, 123456)  # noqa: DTZ001 (a wall time is what is tested)
    fields = resolve("DAILY", naive, "Asia/Shanghai", "UTC")
    assert fields is not None
    assert fields.start_at == datetime(2030, 6, 1, 1, 15, 30, tzinfo=UTC)  # whole seconds
    (calendar,) = spec_of(fields).calendars
    assert (calendar.hour, calendar.minute, calendar.second) == (
        (ScheduleRange(9),),
        (ScheduleRange(15),),
        (ScheduleRange(30),),
    )


def test_without_a_zone_the_tenant_timezone_is_used_and_reported() -> None:
    fields = resolve("WEEKLY", datetime(2030, 6, 2, 22, 0, tzinfo=UTC), None, "Europe/Berlin")
    assert fields is not None and fields.timezone == "Europe/Berlin"
    # 22:00 UTC on Sunday is 00:00 on Monday in Berlin (summer time): Monday is 1 for Temporal.
    (calendar,) = spec_of(fields).calendars
    assert (calendar.day_of_week, calendar.hour) == ((ScheduleRange(1),), (ScheduleRange(0),))
    assert spec_of(fields).time_zone_name == "Europe/Berlin"


def test_the_28th_is_judged_in_the_schedules_zone() -> None:
    # The 28th at 20:00 UTC is already the 29th in Tokyo.
    with pytest.raises(InvalidInput, match="28th"):
        resolve("MONTHLY", datetime(2030, 6, 28, 20, 0, tzinfo=UTC), "Asia/Tokyo", "UTC")
    fields = resolve("MONTHLY", datetime(2030, 6, 28, 20, 0, tzinfo=UTC), None, "UTC")
    assert fields is not None
    assert spec_of(fields).calendars[0].day_of_month == (ScheduleRange(28),)


@pytest.mark.parametrize("zone", ["+08:00", "-0500", "UTC+8", "GMT-03:30", "Z", "+8"])
def test_an_iso_offset_is_refused_as_a_zone(zone: str) -> None:
    with pytest.raises(InvalidInput, match="not an offset"):
        resolve("DAILY", datetime(2030, 1, 1, tzinfo=UTC), zone, "UTC")


@pytest.mark.parametrize(
    ("cadence", "start", "zone", "problem"),
    [
        (None, datetime(2030, 1, 1, tzinfo=UTC), None, "need a schedule_cadence"),
        (None, None, "UTC", "need a schedule_cadence"),
        ("DAILY", None, None, "schedule_start_at is required"),
        ("HOURLY", datetime(2030, 1, 1, tzinfo=UTC), None, "must be one of"),
        ("DAILY", datetime(2030, 1, 1, tzinfo=UTC), "Mars/Olympus", "unknown IANA zone"),
    ],
)
def test_incomplete_or_unknown_schedules_are_refused(
    cadence: str | None, start: datetime | None, zone: str | None, problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        resolve(cadence, start, zone, "UTC")


def test_no_cadence_and_no_fields_is_unscheduled() -> None:
    assert resolve(None, None, None, "UTC") is None
