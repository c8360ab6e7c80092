"""Committed histories still replay on the current interpreter (a change that would break in-flight runs fails here).

Some histories end mid-run (a run still paused, a batch chunk mid-way): replaying them checks that
executions the old code left waiting can be picked up by the new code. The negative controls show
the replayer does catch a history that no longer matches the code.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.engine.stubs import RunInput, RunResult
from workflows.batch_workflow import BatchChunkWorkflow, BatchWorkflow
from workflows.ingest_workflow import IngestDocumentWorkflow
from workflows.run_workflow import RunWorkflow
from workflows.schedule_workflow import ScheduledRunWorkflow

WORKFLOWS: list[type] = [
    RunWorkflow,
    BatchWorkflow,
    BatchChunkWorkflow,
    IngestDocumentWorkflow,
    ScheduledRunWorkflow,
]
HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))
_CLOSED = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
    "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (Path(__file__).parent.parent / "histories" / f"{name}.json").read_text()
    )
    return data


async def replay(history: dict[str, Any], name: str, workflows: list[type] = WORKFLOWS) -> None:
    replayer = Replayer(workflows=workflows, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(WorkflowHistory.from_json(name, history))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    await replay(json.loads(await asyncio.to_thread(path.read_text)), path.stem)


def test_histories_cover_every_workflow_the_worker_runs() -> None:
    types = {
        load(p.stem)["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
        for p in HISTORIES
    }
    # temporalio keeps the registered name on the class; it has no public reader.
    assert types == {workflow._Definition.must_from_class(w).name for w in WORKFLOWS}


def test_histories_include_runs_left_in_flight() -> None:
    """A paused run and a batch mid-way, as the old code left them, must be resumable by the new."""
    open_ones = {p.stem for p in HISTORIES if load(p.stem)["events"][-1]["eventType"] not in _CLOSED}
    assert {"paused_open", "batch_midway_parent", "batch_midway_chunk"} <= open_ones


async def test_history_naming_another_activity_raises_nondeterminism() -> None:
    history = load("slow_python")
    [scheduled] = [e for e in history["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    scheduled["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "run_python_node_v0"
    with pytest.raises(NondeterminismError):
        await replay(history, "slow_python")


async def test_history_with_commands_reordered_raises_nondeterminism() -> None:
    history = load("slow_python")
    events = history["events"]
    # The slow path upserts the RUNNING search attribute (event 6), then schedules its activity (7):
    # swap them, keeping the event ids in order and the activity's later events pointing at it.
    upsert, scheduled = events[5], events[6]
    assert upsert["eventType"] == "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
    assert scheduled["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    upsert["eventId"], scheduled["eventId"] = scheduled["eventId"], upsert["eventId"]
    events[5], events[6] = scheduled, upsert
    for event in events[7:9]:
        attrs = next(v for k, v in event.items() if k.endswith("Attributes"))
        attrs["scheduledEventId"] = scheduled["eventId"]
    with pytest.raises(NondeterminismError):
        await replay(history, "slow_python")


@workflow.defn(name="RunWorkflow")
class RunWorkflowWithAnExtraTimer(RunWorkflow):
    """The interpreter as an unguarded change would make it: one more command before the graph."""

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        await workflow.sleep(1)
        return await super().run(inp)


async def test_changed_interpreter_without_a_patch_raises_nondeterminism() -> None:
    with pytest.raises(NondeterminismError):
        await replay(load("completed_python"), "completed_python", [RunWorkflowWithAnExtraTimer])
