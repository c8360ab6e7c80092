"""AgentNode end to end: real worker, Temporal and PostgreSQL, the provider stub scripting the model's
turns (tool calls included) and Python tools in the sandbox that log each call to a file, so the
tests can count what the model and the tools saw."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.builders import (
    agent_graph,
    definition,
    input_node,
    link,
    node,
    output_node,
    python_node,
    tool_node,
)
from tests.conftest import Stack, Tenant, wait_until
from tests.e2e.test_llm_nodes import create, keyed_tenant
from tests.llm_stub import Fault, LlmStub, final_turn, tool_turn
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e


def weather(log: Path, sleep: float = 0.0, **config: Any) -> dict[str, Any]:
    code = (
        "import json, time\n"
        f"time.sleep({sleep})\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'tool': 'weather', 'city': input_model.city}) + '\\n')\n"
        "return {'result': 'sunny in ' + input_model.city}"
    )
    return tool_node("weather", code, {"city": "string"}, **config)


def add(log: Path) -> dict[str, Any]:
    code = (
        "import json\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'tool': 'add', 'a': input_model.a}) + '\\n')\n"
        "return {'result': input_model.a + input_model.b}"
    )
    return tool_node("add", code, {"a": "integer", "b": "integer"})


def broken() -> dict[str, Any]:
    return tool_node("broken", "raise ValueError('no network')", {})


def logged(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def tenant_with(stack: Stack, app: httpx.AsyncClient, stub: LlmStub) -> Tenant:
    return await keyed_tenant(stack, app, stub, f"sk-agent-{uuid.uuid4().hex[:8]}")


async def start_question(app: httpx.AsyncClient, tenant: Tenant, wf: str) -> str:
    resp = await app.post(
        f"/wf/{wf}/start_run/",
        json={"initial_inputs": {"input_node": {"question": "weather?"}}},
        headers=tenant.headers,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


async def start_agent(
    app: httpx.AsyncClient, stack: Stack, stub: LlmStub, tools: list[dict[str, Any]], **config: Any
) -> tuple[Tenant, str]:
    tenant = await tenant_with(stack, app, stub)
    wf = await create(app, tenant, agent_graph(tools, **config))
    return tenant, await start_question(app, tenant, wf)


async def final(app: httpx.AsyncClient, tenant: Tenant, run_id: str, status: str) -> dict[str, Any]:
    """The run once it reaches `status`; fails showing the run's tasks when it settles otherwise."""
    settled = {"COMPLETED", "FAILED", "CANCELED", status}

    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await app.get(f"/run/{run_id}/", headers=tenant.headers)).json()
        return body if body["status"] in settled else None

    run: dict[str, Any] = await wait_until(check, within=60)
    shown = [(t["node_id"], t["iteration"], t["status"], t["error"]) for t in run["tasks"]]
    assert run["status"] == status, shown
    return run


def tool_messages(seen: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in seen["messages"] if m["role"] == "tool"]


async def tasks(app: httpx.AsyncClient, tenant: Tenant, run_id: str) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = (await app.get(f"/run/{run_id}/tasks/", headers=tenant.headers)).json()
    return body


async def _status_of(app: httpx.AsyncClient, tenant: Tenant, run_id: str, node: str, status: str) -> bool:
    return any(t["node_id"] == node and t["status"] == status for t in await tasks(app, tenant, run_id))


async def test_three_turn_loop_with_two_tools_feeds_answers_back_and_records_each_call(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [
        tool_turn(("weather", {"city": "Paris"}), turn=1),
        tool_turn(("add", {"a": 2, "b": 3}), turn=2),
        final_turn("sunny, and 5"),
    ]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log), add(log)])
    run = await final(app_client, tenant, run_id, "COMPLETED")
    out = run["outputs"]["output_node"]
    assert out["answer"] == "sunny, and 5"
    assert [json.loads(t)["role"] for t in out["calls"]] == [
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]

    first, second, third = provider.tool_requests()
    names = [t["function"]["name"] for t in first.body["tools"]]
    assert names == ["weather", "add"]
    assert first.body["tools"][1]["function"]["parameters"]["properties"] == {
        "a": {"type": "integer"},
        "b": {"type": "integer"},
    }
    assert first.body["messages"][-1] == {"role": "user", "content": "Question: weather?"}
    assert tool_messages(second.body) == [
        {"role": "tool", "tool_call_id": "call_1_0", "content": json.dumps({"result": "sunny in Paris"})}
    ]
    assert [json.loads(m["content"]) for m in tool_messages(third.body)] == [
        {"result": "sunny in Paris"},
        {"result": 5},
    ]
    assert logged(log) == [{"tool": "weather", "city": "Paris"}, {"tool": "add", "a": 2}]

    by_node = {(t["node_id"], t["iteration"]): t for t in run["tasks"]}
    agent = by_node[("agent", None)]
    assert agent["usage"]["calls"] == 3 and agent["usage"]["prompt_tokens"] == 33
    assert by_node[("weather", 1)]["parent_task_id"] == agent["id"]
    assert by_node[("weather", 1)]["inputs"] == {"city": "Paris"}
    assert by_node[("add", 2)]["outputs"] == {"result": 5}


async def test_parallel_tool_calls_run_together_and_answer_in_the_models_order(
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
    tenant, run_id = await start_agent(app_client, stack, provider, [slow, add(log)])
    run = await final(app_client, tenant, run_id, "COMPLETED")
    _, second = provider.tool_requests()
    answers = tool_messages(second.body)
    assert [a["tool_call_id"] for a in answers] == ["call_1_0", "call_1_1", "call_1_2"]
    assert [json.loads(a["content"])["result"] for a in answers] == ["Slow", 2, "Rome"]
    calls = {t["iteration"]: t for t in run["tasks"] if t["iteration"] is not None}
    assert [calls[i]["node_id"] for i in (1, 2, 3)] == ["weather", "add", "weather"]
    # The fast calls finished while the slow one still ran: they ran at the same time.
    assert calls[3]["end_time"] < calls[1]["end_time"]


async def test_invented_tool_and_bad_arguments_go_back_to_the_model_as_tool_errors(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [
        tool_turn(("teleport", {"to": "Mars"}), ("weather", {"town": "Oslo"}), ("add", "{not json")),
        tool_turn(("weather", {"city": "Oslo"}), turn=2),
        final_turn("recovered"),
    ]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log), add(log)])
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "recovered"
    second = provider.tool_requests()[1]
    errors = [m["content"] for m in tool_messages(second.body)]
    assert errors[0] == "Error: there is no tool 'teleport' (tools: weather, add)"
    assert errors[1] == "Error: tool 'weather': argument 'city' is missing"
    assert errors[2].startswith("Error: tool 'add': the arguments are not JSON")
    assert logged(log) == [{"tool": "weather", "city": "Oslo"}]


async def test_model_asking_for_tools_past_max_iterations_fails_the_node_saying_so(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [tool_turn(("weather", {"city": "Loop"}))]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log)], max_iterations=3)
    run = await final(app_client, tenant, run_id, "FAILED")
    agent = next(t for t in run["tasks"] if t["node_id"] == "agent")
    assert agent["status"] == "FAILED"
    assert "still asked for tools after max_iterations (3) turns" in agent["error"]
    assert len(provider.tool_requests()) == 3
    assert len(logged(log)) == 2  # the last turn's calls are not run: nothing could read their answers


async def test_failing_tool_fails_the_agent_naming_the_tool_as_pyspur_does(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    provider.turns = [tool_turn(("broken", {})), final_turn("never")]
    tenant, run_id = await start_agent(app_client, stack, provider, [broken()])
    run = await final(app_client, tenant, run_id, "FAILED")
    agent = next(t for t in run["tasks"] if t["node_id"] == "agent")
    assert "tool 'broken' failed" in agent["error"] and "no network" in agent["error"]
    tool = next(t for t in run["tasks"] if t["node_id"] == "broken")
    assert tool["status"] == "FAILED" and tool["parent_task_id"] == agent["id"]
    assert len(provider.tool_requests()) == 1


async def test_an_llm_call_and_a_subworkflow_serve_as_tools_each_run_as_its_kind_runs(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await tenant_with(stack, app_client, provider)
    child = definition(
        [
            input_node({"city": "string"}),
            python_node("shout", "return {'loud': input_model.input_node.city.upper()}", {"loud": "string"}),
            output_node({"loud": "shout.loud"}),
        ],
        [link("input_node", "shout"), link("shout", "output_node")],
    )
    child_id = await create(app_client, tenant, child)
    writer = {
        "id": "writer",
        "title": "writer",
        "node_type": "SingleLLMCallNode",
        "parent_id": "agent",
        "config": {
            "llm_info": {"model": "openai/gpt-4o", "max_tokens": 64},
            "system_message": "You write poems.",
            "user_message": "A poem about {{ city }}",
            "input_schema": {"city": "string"},
        },
    }
    shout = {
        **node("shouter", "SubworkflowNode", workflow_id=child_id, input_map={"city": "city"}),
        "parent_id": "agent",
    }
    shout["config"]["input_schema"] = {"city": "string"}
    provider.turns = [
        tool_turn(("writer", {"city": "Oslo"}), ("shouter", {"city": "Oslo"})),
        final_turn("ok"),
    ]
    wf = await create(app_client, tenant, agent_graph([writer, shout]))
    run_id = await start_question(app_client, tenant, wf)
    run = await final(app_client, tenant, run_id, "COMPLETED")
    poem_request = next(s for s in provider.calls() if "tools" not in s.body)
    assert poem_request.body["messages"][-1] == {"role": "user", "content": "A poem about Oslo"}
    answers = [json.loads(m["content"]) for m in tool_messages(provider.tool_requests()[1].body)]
    assert answers == [{"output": "stub"}, {"loud": "OSLO"}]
    writer_task = next(t for t in run["tasks"] if t["node_id"] == "writer")
    assert writer_task["usage"]["prompt_tokens"] == 11


def decision(action: str, **extra: Any) -> dict[str, Any]:
    return {"inputs": extra.pop("inputs", {}), "user_id": "alice", "action": action, **extra}


async def paused_on_tool(
    app: httpx.AsyncClient, stack: Stack, stub: LlmStub, log: Path, **tool_config: Any
) -> tuple[Tenant, str]:
    stub.turns = [tool_turn(("weather", {"city": "Paris"})), final_turn("after approval")]
    tenant, run_id = await start_agent(
        app, stack, stub, [weather(log, requires_approval=True, **tool_config)]
    )
    app.headers.update(tenant.headers)
    await final(app, tenant, run_id, "PAUSED")
    return tenant, run_id


async def test_tool_needing_approval_pauses_like_a_human_step_and_approve_runs_it(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    tenant, run_id = await paused_on_tool(app_client, stack, provider, log)
    listed = (await app_client.get("/wf/paused_workflows/", params={"page_size": 100})).json()
    mine = next(p for p in listed if p["run"]["id"] == run_id)
    pause = mine["current_pause"]
    assert pause["node_id"] == "weather"
    assert "'weather'" in pause["pause_message"] and '{"city": "Paris"}' in pause["pause_message"]
    assert pause["input_data"] == {"agent": "Agent", "tool": "weather", "arguments": {"city": "Paris"}}
    assert logged(log) == []
    resp = await app_client.post(f"/wf/process_pause_action/{run_id}/", json=decision("APPROVE"))
    assert resp.status_code == 200, resp.text
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "after approval"
    assert logged(log) == [{"tool": "weather", "city": "Paris"}]
    (entry,) = (await app_client.get(f"/wf/pause_history/{run_id}/")).json()
    assert entry["resume_action"] == "APPROVE" and entry["node_id"] == "weather"


async def test_declined_tool_call_tells_the_model_which_can_answer_without_it(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    tenant, run_id = await paused_on_tool(app_client, stack, provider, log)
    resp = await app_client.post(
        f"/wf/process_pause_action/{run_id}/", json=decision("DECLINE", comments="not today")
    )
    assert resp.status_code == 200, resp.text
    run = await final(app_client, tenant, run_id, "COMPLETED")
    (answer,) = tool_messages(provider.tool_requests()[1].body)
    assert answer["content"] == "The user declined this call of 'weather'. Declined by alice: not today"
    assert logged(log) == []
    assert next(t for t in run["tasks"] if t["node_id"] == "weather")["status"] == "CANCELED"


async def test_override_supplies_the_tools_answer_without_running_it(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    tenant, run_id = await paused_on_tool(app_client, stack, provider, log)
    resp = await app_client.post(
        f"/wf/process_pause_action/{run_id}/", json=decision("OVERRIDE", inputs={"result": "rain"})
    )
    assert resp.status_code == 200, resp.text
    await final(app_client, tenant, run_id, "COMPLETED")
    (answer,) = tool_messages(provider.tool_requests()[1].body)
    assert json.loads(answer["content"]) == {"result": "rain"}
    assert logged(log) == []


async def test_approval_timeout_declines_by_default_and_fails_when_told_to(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [tool_turn(("weather", {"city": "Paris"})), final_turn("gave up")]
    tenant, run_id = await start_agent(
        app_client, stack, provider, [weather(log, requires_approval=True, approval_timeout_seconds=1)]
    )
    await final(app_client, tenant, run_id, "COMPLETED")
    (answer,) = tool_messages(provider.tool_requests()[1].body)
    assert answer["content"].startswith("The user declined this call of 'weather'. Declined by timeout")
    (entry,) = (await app_client.get(f"/wf/pause_history/{run_id}/", headers=tenant.headers)).json()
    assert entry["resume_action"] is None and entry["resume_time"] is not None

    provider.reset()
    provider.turns = [tool_turn(("weather", {"city": "Paris"})), final_turn("never")]
    tenant, run_id = await start_agent(
        app_client,
        stack,
        provider,
        [weather(log, requires_approval=True, approval_timeout_seconds=1, on_approval_timeout="fail")],
    )
    run = await final(app_client, tenant, run_id, "FAILED")
    agent = next(t for t in run["tasks"] if t["node_id"] == "agent")
    assert "No decision within 1 s (on_approval_timeout: fail)" in agent["error"]
    assert logged(log) == []


async def test_cancel_while_a_tool_runs_and_while_the_model_thinks_ends_canceled(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [tool_turn(("weather", {"city": "Slow"})), final_turn("never")]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log, sleep=30)])
    await wait_until(lambda: _status_of(app_client, tenant, run_id, "weather", "RUNNING"), within=60)
    resp = await app_client.post(f"/wf/cancel_workflow/{run_id}/", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    run = await final(app_client, tenant, run_id, "CANCELED")
    assert {t["node_id"]: t["status"] for t in run["tasks"]}["weather"] == "CANCELED"
    assert len(provider.tool_requests()) == 1

    provider.reset()
    provider.latency = 60.0
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log)])
    await wait_until(lambda: _async(bool(provider.calls())), within=60)
    resp = await app_client.post(f"/wf/cancel_workflow/{run_id}/", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    await wait_until(lambda: _async(provider.calls()[0].disconnected), within=30)
    run = await final(app_client, tenant, run_id, "CANCELED")
    assert next(t for t in run["tasks"] if t["node_id"] == "agent")["status"] == "CANCELED"


async def _async(value: bool) -> bool:
    return value


async def restart(stack: Stack) -> None:
    stack.kill_workers()
    await asyncio.sleep(0.5)
    stack.start_worker()


def answered_turns(stub: LlmStub) -> list[int]:
    """For each turn the stub answered, how many tool-call turns its conversation already held."""
    return [sum(1 for m in s.body["messages"] if m.get("tool_calls")) for s in stub.tool_requests()]


async def test_worker_killed_during_a_tool_call_runs_it_again_and_repeats_no_model_turn(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [tool_turn(("weather", {"city": "Paris"})), final_turn("done")]
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log, sleep=4)])
    await wait_until(lambda: _status_of(app_client, tenant, run_id, "weather", "RUNNING"), within=60)
    await restart(stack)
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "done"
    assert answered_turns(provider) == [0, 1]
    # The killed tool logs only once it is done: it finished once, in its second run.
    assert logged(log) == [{"tool": "weather", "city": "Paris"}]


async def test_worker_killed_while_a_tool_waits_for_approval_keeps_the_pause_and_runs_the_tool_once(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    tenant, run_id = await paused_on_tool(app_client, stack, provider, log)
    await restart(stack)
    resp = await app_client.post(f"/wf/process_pause_action/{run_id}/", json=decision("APPROVE"))
    assert resp.status_code == 200, resp.text
    await final(app_client, tenant, run_id, "COMPLETED")
    assert answered_turns(provider) == [0, 1]
    assert logged(log) == [{"tool": "weather", "city": "Paris"}]


async def test_worker_killed_while_the_model_thinks_asks_again_and_runs_no_finished_tool_again(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    provider.turns = [tool_turn(("weather", {"city": "Paris"})), final_turn("done")]
    provider.faults = [Fault(), Fault(delay=30.0)]  # the second turn thinks for 30 s
    tenant, run_id = await start_agent(app_client, stack, provider, [weather(log)])
    await wait_until(lambda: _async(len(provider.calls()) >= 2), within=60)
    await restart(stack)
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "done"
    assert answered_turns(provider) == [0, 1]
    assert provider.calls()[1].disconnected
    assert logged(log) == [{"tool": "weather", "city": "Paris"}]


async def temporal_history(stack: Stack, run_id: str) -> tuple[int, int]:
    """(bytes of the run's Temporal history as JSON, its event count)."""
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    history = await client.get_workflow_handle(temporal_workflow_id(run_id)).fetch_history()
    return len(history.to_json()), len(history.events)


async def test_longest_allowed_loop_with_large_tool_answers_stays_within_temporal_limits(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    """50 turns (the most max_iterations allows), each asking for a tool that answers 10 KB: the
    conversation stays under its cap and the history far under Temporal's 50 MB; a tool answering
    70 KB is cut at 64 KB, and the conversation cap ends the loop early, saying why."""
    big = tool_node("big", "return {'result': 'x' * input_model.size}", {"size": "integer"})
    provider.turns = [tool_turn(("big", {"size": 10_000}), turn=i) for i in range(49)] + [final_turn("long")]
    tenant, run_id = await start_agent(app_client, stack, provider, [big], max_iterations=50)
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"]["answer"] == "long"
    size, events = await temporal_history(stack, run_id)
    print(f"\n[agent] 50 turns, 49 tool answers of 10 KB: history {size / 1e6:.1f} MB, {events} events")
    assert size < 50_000_000

    provider.reset()
    provider.turns = [tool_turn(("big", {"size": 70_000}), turn=i) for i in range(50)]
    tenant, run_id = await start_agent(app_client, stack, provider, [big], max_iterations=50)
    run = await final(app_client, tenant, run_id, "FAILED")
    agent = next(t for t in run["tasks"] if t["node_id"] == "agent")
    assert "the conversation reached" in agent["error"] and "tool answers are too large" in agent["error"]
    (answer,) = tool_messages(provider.tool_requests()[1].body)
    assert answer["content"].endswith("more characters]") and len(answer["content"]) < 66_000
    size, events = await temporal_history(stack, run_id)
    print(f"[agent] 70 KB answers until the conversation cap: history {size / 1e6:.1f} MB, {events} events")


async def test_partial_run_of_an_agent_whose_tool_needs_approval_is_refused_naming_it(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, log: Path
) -> None:
    tenant = await tenant_with(stack, app_client, provider)
    wf = await create(app_client, tenant, agent_graph([weather(log, requires_approval=True)]))
    resp = await app_client.post(
        f"/wf/{wf}/run_partial/",
        json={"node_id": "agent", "initial_inputs": {"input_node": {"question": "weather?"}}},
        headers=tenant.headers,
    )
    assert resp.status_code in (400, 422), resp.text
    assert "cannot wait for a person" in resp.text and "'agent'" in resp.text
    assert provider.calls() == []
