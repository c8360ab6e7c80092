"""The typed Temporal contracts: implementations register every activity under the name histories hold."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity

from activities.ingest_activities import IngestActivities
from activities.llm_activities import LlmActivities
from activities.run_activities import RunActivities
from activities.schedule_activities import ScheduleActivities
from workflows.contracts import RunActivitiesContract

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def _recorded_activity_types() -> set[str]:
    """Activity types in the committed histories: scheduled activities and local-activity markers."""
    names: set[str] = set()
    for path in HISTORIES:
        for event in json.loads(path.read_text())["events"]:
            scheduled = event.get("activityTaskScheduledEventAttributes")
            if scheduled:
                names.add(scheduled["activityType"]["name"])
            marker = event.get("markerRecordedEventAttributes")
            if marker and marker["markerName"] == "core_local_activity":
                data = json.loads(base64.b64decode(marker["details"]["data"]["payloads"][0]["data"]))
                names.add(data["activity_type"])
    return names


def _registered_names(*implementations: Any) -> set[str]:
    return {
        activity._Definition.must_from_callable(fn).name or ""
        for impl in implementations
        for fn in impl.activities()
    }


def test_every_activity_in_recorded_histories_is_registered_under_its_name() -> None:
    registered = _registered_names(
        RunActivities(None, None, None),  # type: ignore[arg-type]
        IngestActivities(None, None, None),  # type: ignore[arg-type]
        ScheduleActivities(None, None, None, None),  # type: ignore[arg-type]
        LlmActivities(None, None),  # type: ignore[arg-type]
    )
    recorded = _recorded_activity_types()
    assert "run_python_node" in recorded and "finalize_run" in recorded
    assert recorded <= registered


def test_an_implementation_missing_an_activity_cannot_be_built() -> None:
    class Partial(RunActivitiesContract):
        async def run_python_node(self, arg: Any) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]
