"""The Temporal history of an agent run: a tool turn, then a tool call that waits for approval and
is approved, then the final answer. With RECORD_HISTORIES=1 the history is written to
tests/histories/agent_tool_and_approval.json, which tests/unit/test_replay.py replays (so a change to
the agent's commands without `workflow.patched` fails there)."""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import agent_graph
from tests.conftest import Stack
from tests.e2e.test_agent_node import add, decision, final, logged, start_question, weather
from tests.e2e.test_llm_nodes import create, history_json, keyed_tenant
from tests.llm_stub import LlmStub, final_turn, tool_turn

pytestmark = pytest.mark.e2e

HISTORY = Path(__file__).parent.parent / "histories" / "agent_tool_and_approval.json"


async def test_agent_run_history_holds_each_turn_tool_and_pause_once_and_no_key(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    key = f"sk-agent-history-{uuid.uuid4().hex}"
    tenant = await keyed_tenant(stack, app_client, provider, key)
    provider.turns = [
        tool_turn(("add", {"a": 2, "b": 3}), turn=1),
        tool_turn(("weather", {"city": "Paris"}), turn=2),
        final_turn("sunny, and 5"),
    ]
    wf = await create(app_client, tenant, agent_graph([add(log), weather(log, requires_approval=True)]))
    run_id = await start_question(app_client, tenant, wf)
    await final(app_client, tenant, run_id, "PAUSED")
    resp = await app_client.post(
        f"/wf/process_pause_action/{run_id}/", json=decision("APPROVE"), headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "sunny, and 5"
    assert logged(log) == [{"tool": "add", "a": 2}, {"tool": "weather", "city": "Paris"}]

    text = await history_json(stack, run_id)
    assert key not in text
    events = json.loads(text)["events"]
    steps = activities(events)
    assert steps.count("call_llm") == 3  # one activity per model turn
    assert steps.count("run_python_node") == 2  # one per tool call
    assert (steps.count("record_pause"), steps.count("record_decision")) == (1, 1)
    kinds = [e["eventType"] for e in events]
    assert kinds.count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1  # the approval
    if os.environ.get("RECORD_HISTORIES") == "1":
        HISTORY.write_text(json.dumps(json.loads(text), indent=1))


def activities(events: list[dict[str, Any]]) -> list[str]:
    """The activity types of the history in order, regular and local (recorded as markers)."""
    found = []
    for event in events:
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            found.append(event["activityTaskScheduledEventAttributes"]["activityType"]["name"])
        elif event["eventType"] == "EVENT_TYPE_MARKER_RECORDED":
            data = event["markerRecordedEventAttributes"]["details"]["data"]["payloads"][0]["data"]
            found.append(json.loads(base64.b64decode(data))["activity_type"])
    return found
