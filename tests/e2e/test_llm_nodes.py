"""SingleLLMCallNode end to end: real worker, real Temporal, real PostgreSQL, and an OpenAI-compatible
provider stub on loopback. Assertions are on what the provider received and on what the API, the
database and Temporal's history hold."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.builders import definition, input_node, link, output_node, python_node
from tests.conftest import Stack, Tenant, make_tenant, reaches, wait_until
from tests.e2e.v1_client import connect, new_definition, raw, root_folder, set_graph, settled
from tests.llm_stub import Fault, LlmStub
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "words": {"type": "integer"}}}


async def keyed_tenant(stack: Stack, app: httpx.AsyncClient, stub: LlmStub, key: str | None) -> Tenant:
    """A fresh tenant whose OpenAI base URL is the stub (and whose key is `key`), set through /env-mgmt/."""
    tenant = await make_tenant(stack.database_url)
    values = {"OPENAI_API_BASE": stub.base_url}
    if key:
        values["OPENAI_API_KEY"] = key
    for name, value in values.items():
        resp = await app.post("/env-mgmt/", json={"name": name, "value": value}, headers=tenant.headers)
        assert resp.status_code == 200, resp.text
    return tenant


def llm_node(node_id: str = "llm", **config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "llm_info": {"model": "openai/gpt-4o", "max_tokens": 256, "temperature": 0.2},
        "system_message": "You write about {{input_node.topic}}.",
        "user_message": "Topic: {{input_node.topic}}",
        "output_schema": {"title": "string", "words": "integer"},
        "output_json_schema": json.dumps(SCHEMA),
        "max_attempts": 3,
    }
    base.update(config)
    return {"id": node_id, "title": "Writer", "node_type": "SingleLLMCallNode", "config": base}


def llm_graph(**config: Any) -> dict[str, Any]:
    return definition(
        [
            input_node({"topic": "string", "history": "list"}, required=["topic"]),
            llm_node(**config),
            output_node({"title": "Writer.title", "words": "Writer.words"}),
        ],
        [link("input_node", "llm"), link("llm", "output_node")],
    )


async def create(app: httpx.AsyncClient, tenant: Tenant, defn: dict[str, Any]) -> str:
    resp = await app.post(
        "/wf/", json={"name": f"llm-{uuid.uuid4().hex[:6]}", "definition": defn}, headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


async def run_blocking(
    app: httpx.AsyncClient, tenant: Tenant, wf: str, topic: str = "cats"
) -> httpx.Response:
    return await app.post(
        f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"topic": topic}}}, headers=tenant.headers
    )


async def start(app: httpx.AsyncClient, tenant: Tenant, wf: str, topic: str = "cats") -> str:
    resp = await app.post(
        f"/wf/{wf}/start_run/",
        json={"initial_inputs": {"input_node": {"topic": topic}}},
        headers=tenant.headers,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


async def final(app: httpx.AsyncClient, tenant: Tenant, run_id: str, status: str) -> dict[str, Any]:
    app.headers.update(tenant.headers)
    return await reaches(app, run_id, status, within=60)


async def history_json(stack: Stack, run_id: str) -> str:
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    history = await client.get_workflow_handle(temporal_workflow_id(run_id)).fetch_history()
    return history.to_json()


async def test_llm_node_sends_pyspur_messages_and_returns_the_schema_fields_with_usage(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"sk-happy-{uuid.uuid4().hex}"
    tenant = await keyed_tenant(stack, app_client, provider, key)
    wf = await create(
        app_client,
        tenant,
        llm_graph(
            few_shot_examples=[{"input": "dogs", "output": '{"title": "On dogs", "words": 2}'}],
            enable_message_history=True,
            message_history_variable="input_node.history",
        ),
    )
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    resp = await app_client.post(
        f"/wf/{wf}/run/",
        json={"initial_inputs": {"input_node": {"topic": "cats", "history": history}}},
        headers=tenant.headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["output_node"] == {"title": "stub", "words": 1}

    (seen,) = provider.calls()
    assert seen.headers["authorization"] == f"Bearer {key}"
    assert seen.body["model"] == "gpt-4o"
    assert seen.body["max_tokens"] == 256 and seen.body["temperature"] == 0.2
    assert "top_p" not in seen.body
    assert seen.body["messages"] == [
        {"role": "system", "content": "You write about cats."},
        {"role": "user", "content": "dogs"},
        {"role": "assistant", "content": '{"title": "On dogs", "words": 2}'},
        *history,
        {"role": "user", "content": "Topic: cats"},
    ]
    assert seen.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "schema": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "additionalProperties": False},
                    "words": {"type": "integer", "additionalProperties": False},
                },
                "required": ["title", "words"],
                "additionalProperties": False,
            },
            "strict": True,
            "name": "output",
        },
    }

    runs = (await app_client.get(f"/wf/{wf}/runs/", headers=tenant.headers)).json()
    run_id = runs[0]["id"]
    tasks = (await app_client.get(f"/run/{run_id}/tasks/", headers=tenant.headers)).json()
    (llm_task,) = [t for t in tasks if t["node_id"] == "llm"]
    assert llm_task["usage"] == {
        "model": "openai/gpt-4o",
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "cost_usd": pytest.approx((11 * 2.5 + 7 * 10.0) / 1e6),
    }
    run = (await app_client.get(f"/run/{run_id}/status/", headers=tenant.headers)).json()
    assert run["usage"]["prompt_tokens"] == 11 and run["usage"]["completion_tokens"] == 7


async def test_empty_user_message_sends_the_input_as_json(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-json-input")
    wf = await create(app_client, tenant, llm_graph(user_message=""))
    assert (await run_blocking(app_client, tenant, wf, "owls")).status_code == 200
    (seen,) = provider.calls()
    assert seen.body["messages"][-1] == {
        "role": "user",
        "content": json.dumps({"input_node": {"topic": "owls"}}, indent=2),
    }


async def test_key_string_appears_nowhere_but_the_provider_request(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"sk-secret-{uuid.uuid4().hex}"
    tenant = await keyed_tenant(stack, app_client, provider, key)
    wf = await create(app_client, tenant, llm_graph())
    ok = await start(app_client, tenant, wf)
    ok_run = await final(app_client, tenant, ok, "COMPLETED")
    # A provider that echoes the key in its 401 body, as OpenAI does (partly masked).
    provider.faults.append(
        Fault(401, {"error": {"message": f"Incorrect API key provided: {key[:8]}****{key[-4:]}. Also {key}"}})
    )
    bad = await start(app_client, tenant, wf)
    bad_run = await final(app_client, tenant, bad, "FAILED")
    assert "refused the credentials (HTTP 401)" in (bad_run["error"] or json.dumps(bad_run["tasks"]))

    assert [s.headers["authorization"] for s in provider.calls()] == [f"Bearer {key}"] * 2
    places = {
        "history ok": await history_json(stack, ok),
        "history failed": await history_json(stack, bad),
        "run ok": json.dumps(ok_run),
        "run failed": json.dumps(bad_run),
        "tasks": (await app_client.get(f"/run/{bad}/tasks/", headers=tenant.headers)).text,
        "env-mgmt": (await app_client.get("/env-mgmt/OPENAI_API_KEY", headers=tenant.headers)).text,
        "worker log": (stack.tmp / "worker.log").read_text(errors="replace"),
    }
    for part in (key, key[:12], key[-8:]):
        leaked = [where for where, text in places.items() if part in text]
        assert leaked == [], f"{part!r} found in {leaked}"
    masked = json.loads(places["env-mgmt"])["value"]
    assert masked.startswith(key[:4]) and masked.endswith(key[-4:]) and "*" in masked


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, "refused the credentials"),
        (403, "refused the credentials"),
        (400, "rejected the request"),
        (404, "does not know the model or endpoint"),
    ],
)
async def test_auth_bad_request_and_unknown_model_fail_the_node_without_a_retry(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub, status: int, kind: str
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-fail-fast")
    wf = await create(app_client, tenant, llm_graph())
    provider.faults.append(Fault(status, {"error": {"message": "nope"}}))
    run = await final(app_client, tenant, await start(app_client, tenant, wf), "FAILED")
    (task,) = [t for t in run["tasks"] if t["node_id"] == "llm"]
    assert task["status"] == "FAILED"
    assert f"openai {kind} (HTTP {status}): nope" in task["error"]
    assert len(provider.calls()) == 1


async def test_rate_limit_is_retried_after_retry_after_and_then_succeeds(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-429")
    wf = await create(app_client, tenant, llm_graph())
    provider.faults.append(Fault(429, {"error": {"message": "slow down"}}, {"retry-after": "1"}))
    run = await final(app_client, tenant, await start(app_client, tenant, wf), "COMPLETED")
    assert run["outputs"]["output_node"] == {"title": "stub", "words": 1}
    assert len(provider.calls()) == 2


async def test_server_errors_retry_up_to_the_node_attempts_then_fail(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-500")
    wf = await create(app_client, tenant, llm_graph(max_attempts=2))
    provider.faults.extend([Fault(500), Fault(503)])
    run = await final(app_client, tenant, await start(app_client, tenant, wf), "FAILED")
    (task,) = [t for t in run["tasks"] if t["node_id"] == "llm"]
    assert "openai failed (HTTP 503)" in task["error"]
    assert len(provider.calls()) == 2

    provider.reset()
    provider.faults.append(Fault(500))
    done = await final(app_client, tenant, await start(app_client, tenant, wf), "COMPLETED")
    assert done["outputs"]["output_node"] == {"title": "stub", "words": 1}
    assert len(provider.calls()) == 2


async def test_reply_in_markdown_is_repaired_and_a_reply_missing_a_field_fails_naming_it(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-parse")
    wf = await create(app_client, tenant, llm_graph())
    provider.faults.append(Fault(content='```json\n{"title": "fixed", "words": 3,}\n```'))
    repaired = await final(app_client, tenant, await start(app_client, tenant, wf), "COMPLETED")
    assert repaired["outputs"]["output_node"] == {"title": "fixed", "words": 3}

    schema = {**SCHEMA, "required": ["title", "words"]}
    strict = await create(app_client, tenant, llm_graph(output_json_schema=json.dumps(schema)))
    provider.faults.append(Fault(content='{"title": "only"}'))
    run = await final(app_client, tenant, await start(app_client, tenant, strict), "FAILED")
    (task,) = [t for t in run["tasks"] if t["node_id"] == "llm"]
    assert "Field 'words' is missing from the reply" in task["error"]


async def test_no_key_configured_fails_saying_which_key_and_where_to_set_it(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await make_tenant(stack.database_url)
    wf = await create(
        app_client, tenant, llm_graph(llm_info={"model": "deepseek/deepseek-chat", "max_tokens": 9})
    )
    run = await final(app_client, tenant, await start(app_client, tenant, wf), "FAILED")
    (task,) = [t for t in run["tasks"] if t["node_id"] == "llm"]
    assert "No DEEPSEEK_API_KEY is configured" in task["error"] and "/env-mgmt/" in task["error"]
    assert provider.calls() == []


async def test_template_naming_a_missing_title_is_a_draft_problem_and_a_missing_field_fails_the_node(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-template")
    resp = await app_client.post(
        "/wf/",
        json={
            "name": f"llm-{uuid.uuid4().hex[:6]}",
            "definition": llm_graph(user_message="About {{Nobody.topic}}"),
        },
        headers=tenant.headers,
    )
    # Stored as a draft (the editor autosaves half-typed templates), its problem named; runs are refused.
    assert resp.status_code == 200, resp.text
    fault = "user_message names 'Nobody', which is not the title of a node linked into it"
    assert [p["node_id"] for p in resp.json()["problems"] if fault in p["detail"]] == ["llm"]
    refused = await app_client.post(
        f"/wf/{resp.json()['id']}/run/",
        json={"initial_inputs": {"input_node": {"topic": "x"}}},
        headers=tenant.headers,
    )
    assert refused.status_code == 422 and fault in refused.text

    wf = await create(app_client, tenant, llm_graph(user_message="About {{input_node.colour}}"))
    run = await final(app_client, tenant, await start(app_client, tenant, wf), "FAILED")
    (task,) = [t for t in run["tasks"] if t["node_id"] == "llm"]
    assert "user_message names something the node's input does not have" in task["error"]
    assert "no attribute 'colour'" in task["error"]
    assert provider.calls() == []


async def test_two_tenants_calls_each_carry_their_own_key(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key_a, key_b = f"sk-a-{uuid.uuid4().hex}", f"sk-b-{uuid.uuid4().hex}"
    a = await keyed_tenant(stack, app_client, provider, key_a)
    b = await keyed_tenant(stack, app_client, provider, key_b)
    wf_a, wf_b = await create(app_client, a, llm_graph()), await create(app_client, b, llm_graph())
    results = await asyncio.gather(
        run_blocking(app_client, a, wf_a, "from-a"), run_blocking(app_client, b, wf_b, "from-b")
    )
    assert [r.status_code for r in results] == [200, 200]
    assert [s.body["messages"][-1]["content"] for s in provider.calls(key_a)] == ["Topic: from-a"]
    assert [s.body["messages"][-1]["content"] for s in provider.calls(key_b)] == ["Topic: from-b"]


async def test_finished_call_is_not_repeated_when_the_worker_dies_before_the_run_ends(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-durable")
    slow = "import time\ntime.sleep(4)\nreturn {'t': input_model.Writer.title}"
    wf = await create(
        app_client,
        tenant,
        definition(
            [
                input_node({"topic": "string"}),
                llm_node(),
                python_node("py", slow, {"t": "string"}),
                output_node({"t": "py.t"}),
            ],
            [link("input_node", "llm"), link("llm", "py"), link("py", "output_node")],
        ),
    )
    run_id = await start(app_client, tenant, wf)

    async def python_running() -> bool:
        tasks = (await app_client.get(f"/run/{run_id}/tasks/", headers=tenant.headers)).json()
        return any(t["node_id"] == "py" and t["status"] == "RUNNING" for t in tasks)

    await wait_until(python_running, within=60)
    stack.kill_workers()
    await asyncio.sleep(0.5)
    stack.start_worker()
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"] == {"t": "stub"}
    assert len(provider.calls()) == 1


async def test_cancelling_a_run_closes_the_in_flight_provider_connection(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-cancel")
    wf = await create(app_client, tenant, llm_graph())
    provider.latency = 60.0
    run_id = await start(app_client, tenant, wf)
    await wait_until(lambda: _async(bool(provider.calls())), within=60)
    resp = await app_client.post(f"/wf/cancel_workflow/{run_id}/", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    await wait_until(lambda: _async(provider.calls()[0].disconnected), within=30)
    run = await final(app_client, tenant, run_id, "CANCELED")
    assert not provider.calls()[0].answered
    assert [t["status"] for t in run["tasks"] if t["node_id"] == "llm"] == ["CANCELED"]


async def _async(value: bool) -> bool:
    return value


async def test_worker_killed_during_a_call_retries_it_and_the_run_completes(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-inflight")
    wf = await create(app_client, tenant, llm_graph())
    provider.faults.append(Fault(delay=30.0))
    run_id = await start(app_client, tenant, wf)
    await wait_until(lambda: _async(bool(provider.calls())), within=60)
    stack.kill_workers()
    await asyncio.sleep(0.5)
    stack.start_worker()
    run = await final(app_client, tenant, run_id, "COMPLETED")
    assert run["outputs"]["output_node"] == {"title": "stub", "words": 1}
    first, second = provider.calls()
    assert first.disconnected and second.answered


def test_llm_run_through_v1_renders_the_run_message(live_api: str, stack: Stack, stub: LlmStub) -> None:
    stub.reset()
    owner = asyncio.run(make_tenant(stack.database_url))
    with raw(live_api, owner.key) as http:
        for name, value in {"OPENAI_API_KEY": "sk-v1-run", "OPENAI_API_BASE": stub.base_url}.items():
            assert http.post("/env-mgmt/", json={"name": name, "value": value}).status_code == 200
    v1 = connect(live_api, owner.key)
    d = new_definition(v1, root_folder(v1))
    fields = {"user_message": "string", "instruction": "string", "inputs": "array"}
    graph = definition(
        [
            input_node(fields),
            llm_node(system_message="You take notes.", user_message="Note: {{input_node.user_message}}"),
            output_node({"title": "Writer.title"}),
        ],
        [link("input_node", "llm"), link("llm", "output_node")],
    )
    set_graph(live_api, owner.key, d.id, graph)
    run = v1.defs.create_workflow_run(d.id, user_message="from ksapi")
    v1.runs.start_workflow_run(run.id)
    settled(v1, run.id, "COMPLETED", within=60)
    # An in-flight call may be retried (a heartbeat lost under load); a finished one never is.
    seen = stub.calls("sk-v1-run")
    assert seen and len(seen) == len(stub.calls())
    assert all(s.body["messages"][-1] == {"role": "user", "content": "Note: from ksapi"} for s in seen)
    with raw(live_api, owner.key) as http:
        body = http.get(f"/v1/workflow-runs/{run.id}").json()
    # The usage of the call that finished (a call lost with its worker reported none).
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (11, 7)


async def test_best_of_n_rates_each_generation_and_returns_the_best(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await keyed_tenant(stack, app_client, provider, "sk-best-of-n")
    generations = iter(["dull", "great", "fine"])
    scores = {"dull": 2, "great": 9, "fine": 5}

    def respond(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        if system.startswith("Rate"):
            (generation,) = json.loads(body["messages"][-1]["content"]).values()
            return json.dumps({"rating": scores[generation["response"]]})
        return json.dumps({"response": next(generations)})

    provider.responder = respond
    schema = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    best = {
        "id": "best",
        "title": "Best",
        "node_type": "BestOfNNode",
        "config": {
            "llm_info": {"model": "openai/gpt-4o-mini", "max_tokens": 64},
            "system_message": "Write a line about {{input_node.topic}}.",
            "user_message": "{{input_node.topic}}",
            "samples": 3,
            "output_schema": {"response": "string"},
            "output_json_schema": json.dumps(schema),
        },
    }
    wf = await create(
        app_client,
        tenant,
        definition(
            [input_node({"topic": "string"}), best, output_node({"line": "Best.response"})],
            [link("input_node", "best"), link("best", "output_node")],
        ),
    )
    run = await final(app_client, tenant, await start(app_client, tenant, wf, "tea"), "COMPLETED")
    assert run["outputs"]["output_node"] == {"line": "great"}
    calls = provider.calls()
    assert len(calls) == 6
    ratings = [c for c in calls if c.body["messages"][0]["content"].startswith("Rate")]
    assert len(ratings) == 3
    assert all(c.body["response_format"]["json_schema"]["schema"]["required"] == ["rating"] for c in ratings)
    (task,) = [t for t in run["tasks"] if t["node_id"] == "best"]
    assert task["usage"]["calls"] == 6 and task["usage"]["prompt_tokens"] == 6 * 11
