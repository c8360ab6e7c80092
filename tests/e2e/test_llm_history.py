"""The Temporal history of a run with LLM nodes (a SingleLLMCallNode feeding a BestOfNNode): one
`call_llm` activity per provider call, the key nowhere in it. With RECORD_HISTORIES=1 the history is
written to tests/histories/llm_nodes.json, which tests/unit/test_replay.py replays."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import definition, input_node, link, output_node
from tests.conftest import Stack
from tests.e2e.test_llm_nodes import create, final, history_json, keyed_tenant, llm_node, start
from tests.llm_stub import LlmStub

pytestmark = pytest.mark.e2e

HISTORY = Path(__file__).parent.parent / "histories" / "llm_nodes.json"


def graph() -> dict[str, Any]:
    schema = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    best = {
        "id": "best",
        "title": "Best",
        "node_type": "BestOfNNode",
        "config": {
            "llm_info": {"model": "openai/gpt-4o-mini", "max_tokens": 64},
            "system_message": "Improve the title.",
            "user_message": "{{Writer.title}}",
            "samples": 2,
            "output_schema": {"response": "string"},
            "output_json_schema": json.dumps(schema),
        },
    }
    return definition(
        [input_node({"topic": "string"}), llm_node(), best, output_node({"line": "Best.response"})],
        [link("input_node", "llm"), link("llm", "best"), link("best", "output_node")],
    )


async def test_llm_run_history_holds_one_call_llm_activity_per_call_and_no_key(
    app_client: httpx.AsyncClient, stack: Stack, stub: LlmStub
) -> None:
    key = f"sk-history-{uuid.uuid4().hex}"
    tenant = await keyed_tenant(stack, app_client, stub, key)
    run = await final(
        app_client,
        tenant,
        await start(app_client, tenant, await create(app_client, tenant, graph())),
        "COMPLETED",
    )
    assert run["outputs"]["output_node"] == {"line": "stub"}
    assert len(stub.calls(key)) == 1 + 2 * 2  # the writer, then two generations and two ratings

    text = await history_json(stack, run["id"])
    assert key not in text
    events = json.loads(text)["events"]
    scheduled = [
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    ]
    assert scheduled.count("call_llm") == 5
    if os.environ.get("RECORD_HISTORIES") == "1":
        HISTORY.write_text(json.dumps(json.loads(text), indent=1))
