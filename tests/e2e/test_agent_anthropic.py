"""AgentNode on an anthropic/ model: tool turns through the `anthropic` SDK's Messages API against the
loopback stub speaking its wire format (`tool_use` blocks out, `tool_result` blocks back), with the
real worker, Temporal and PostgreSQL, and Python tools logging each call to a file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import agent_graph, tool_node
from tests.conftest import Stack, Tenant, wait_until
from tests.e2e.test_agent_node import (
    _status_of,
    add,
    decision,
    final,
    logged,
    restart,
    start_question,
    weather,
)
from tests.e2e.test_llm_nodes import create
from tests.e2e.test_llm_providers import anthropic_values, tenant_with
from tests.llm_stub import LlmStub, final_turn, held, tool_turn

pytestmark = pytest.mark.e2e

SONNET = {"model": "anthropic/claude-3-5-sonnet-latest", "max_tokens": 256, "temperature": 0.2}


async def start_agent(
    app: httpx.AsyncClient, stack: Stack, stub: LlmStub, tools: list[dict[str, Any]], **config: Any
) -> tuple[Tenant, str]:
    tenant = await tenant_with(app, stack, anthropic_values(stub, f"sk-ant-{uuid.uuid4().hex}"))
    config.setdefault("llm_info", SONNET)
    wf = await create(app, tenant, agent_graph(tools, **config))
    return tenant, await start_question(app, tenant, wf)


def results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `tool_result` blocks of the request's last message (the answers to the last turn)."""
    last = body["messages"][-1]
    assert last["role"] == "user"
    return [b for b in last["content"] if b["type"] == "tool_result"]


def tool_use(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


async def test_three_turn_loop_with_two_tools_speaks_tool_use_and_tool_result_blocks(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [
        tool_turn(("weather", {"city": "Paris"}), turn=1),
        {**tool_turn(("add", {"a": 2, "b": 3}), turn=2), "content": "Now the sum."},
        final_turn("sunny, and 5"),
    ]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log), add(log)])
    run = await final(app_client, tenant, run_id, "COMPLETED")
    out = run["outputs"]["output_node"]
    assert out["answer"] == "sunny, and 5"
    roles = [json.loads(t)["role"] for t in out["calls"]]
    assert roles == ["assistant", "tool", "assistant", "tool", "assistant"]

    first, second, third = provider.tool_requests()
    assert first.path == "/v1/messages"
    assert first.body["tools"][1] == {
        "name": "add",
        "description": "PythonFuncNode 'add'",
        "input_schema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    }
    assert [t["name"] for t in first.body["tools"]] == ["weather", "add"]
    assert "tool_choice" not in first.body  # the model chooses between the tools and its answer
    assert "adhere to this schema" in first.body["system"]
    assert first.body["messages"] == [{"role": "user", "content": "Question: weather?"}]
    assert second.body["messages"][1:] == [
        {"role": "assistant", "content": [tool_use("call_1_0", "weather", {"city": "Paris"})]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1_0",
                    "content": json.dumps({"result": "sunny in Paris"}),
                }
            ],
        },
    ]
    # The assistant turn goes back as the model sent it: its text, then its tool_use block.
    assert third.body["messages"][3] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Now the sum."}, tool_use("call_2_0", "add", {"a": 2, "b": 3})],
    }
    assert [(r["tool_use_id"], json.loads(r["content"])) for r in results(third.body)] == [
        ("call_2_0", {"result": 5})
    ]
    assert logged(log) == [{"tool": "weather", "city": "Paris"}, {"tool": "add", "a": 2}]

    by_node = {(t["node_id"], t["iteration"]): t for t in run["tasks"]}
    agent = by_node[("agent", None)]
    assert agent["usage"]["calls"] == 3 and agent["usage"]["prompt_tokens"] == 33
    assert agent["usage"]["model"] == "anthropic/claude-3-5-sonnet-latest"
    assert by_node[("add", 2)]["outputs"] == {"result": 5}
    assert by_node[("weather", 1)]["parent_task_id"] == agent["id"]


async def test_parallel_tool_uses_answer_in_one_message_in_the_models_order_with_thinking_kept(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [
        tool_turn(("weather", {"city": "Slow"}), ("add", {"a": 1, "b": 1}), ("weather", {"city": "Rome"})),
        final_turn("done"),
    ]
    slow = tool_node(
        "weather",
        "import time\ntime.sleep(1.5 if input_model.city == 'Slow' else 0)\nreturn {'result': input_model.city}",
        {"city": "string"},
    )
    thinking = {"model": "anthropic/claude-3-7-sonnet-latest", "max_tokens": 4096}
    tenant, run_id = await start_agent(
        app_client, stack, provider, [slow, add(log)], llm_info=thinking, enable_thinking=True
    )
    run = await final(app_client, tenant, run_id, "COMPLETED")
    first, second = provider.tool_requests()
    assert first.body["thinking"]["type"] == "enabled" and "tool_choice" not in first.body
    asked, answered = second.body["messages"][1:]
    # Anthropic wants the turn's thinking block back unchanged, before its tool_use blocks.
    assert asked["content"] == [
        {"type": "thinking", "thinking": "Turn 1.", "signature": "sig1"},
        tool_use("call_1_0", "weather", {"city": "Slow"}),
        tool_use("call_1_1", "add", {"a": 1, "b": 1}),
        tool_use("call_1_2", "weather", {"city": "Rome"}),
    ]
    assert answered["role"] == "user"
    assert [(r["tool_use_id"], json.loads(r["content"])["result"]) for r in answered["content"]] == [
        ("call_1_0", "Slow"),
        ("call_1_1", 2),
        ("call_1_2", "Rome"),
    ]
    assert not any("is_error" in r for r in answered["content"])
    calls = {t["iteration"]: t for t in run["tasks"] if t["iteration"] is not None}
    assert calls[3]["end_time"] < calls[1]["end_time"]  # the fast calls did not wait for the slow one
    # The node's output keeps PySpur's chat-format messages, without the route's thinking blocks.
    assert "thinking_blocks" not in run["outputs"]["output_node"]["calls"][0]


async def test_declined_call_and_invented_tool_reach_the_model_as_error_tool_results(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [
        tool_turn(("weather", {"city": "Paris"}), ("teleport", {"to": "Mars"})),
        final_turn("without weather"),
    ]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log, requires_approval=True)])
    await final(app_client, tenant, run_id, "PAUSED")
    resp = await app_client.post(
        f"/wf/process_pause_action/{run_id}/",
        json=decision("DECLINE", comments="not today"),
        headers=tenant.headers,
    )
    assert resp.status_code == 200, resp.text
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "without weather"
    assert results(provider.tool_requests()[1].body) == [
        {
            "type": "tool_result",
            "tool_use_id": "call_1_0",
            "content": "The user declined this call of 'weather'. Declined by alice: not today",
            "is_error": True,
        },
        {
            "type": "tool_result",
            "tool_use_id": "call_1_1",
            "content": "Error: there is no tool 'teleport' (tools: weather)",
            "is_error": True,
        },
    ]
    assert logged(log) == []
    assert "is_error" not in run["outputs"]["output_node"]["calls"][1]


async def test_worker_killed_during_a_tool_call_on_the_messages_api_repeats_no_finished_step(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [tool_turn(("weather", {"city": "Paris"})), final_turn("done")]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log, sleep=4)])
    await wait_until(lambda: _status_of(app_client, tenant, run_id, "weather", "RUNNING"), within=60)
    await restart(stack)
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "done"
    # Each turn was answered once: the first (no tool turn held) and the one after the tool.
    assert [held(s.body) for s in provider.tool_requests()] == [0, 1]
    assert logged(log) == [{"tool": "weather", "city": "Paris"}]
    (answer,) = results(provider.tool_requests()[1].body)
    assert answer["tool_use_id"] == "call_1_0" and json.loads(answer["content"]) == {
        "result": "sunny in Paris"
    }


async def test_turn_cut_at_max_tokens_fails_the_agent_saying_so_without_retrying(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [{**tool_turn(("weather", {"city": "Par"})), "stop_reason": "max_tokens"}]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log)])
    run = await final(app_client, tenant, run_id, "FAILED")
    agent = next(t for t in run["tasks"] if t["node_id"] == "agent")
    assert "cut at max_tokens (256)" in agent["error"]
    assert len(provider.tool_requests()) == 1
    assert logged(log) == []
