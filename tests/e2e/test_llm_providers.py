"""Each provider route against its wire format on a loopback stub (real worker, Temporal and
PostgreSQL): Anthropic through its own SDK and Messages API, Azure's deployment URL, Gemini's and
DeepSeek's OpenAI-compatible endpoints, Ollama's /v1; base URLs checked against the egress rule when
saved and when called."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from core import provider_keys
from db import provider_keys as keys_repo
from db.session import make_engine, make_session_factory
from tests.builders import definition, input_node, link, output_node
from tests.conftest import PROVIDER_KEYS_SECRET, Stack, Tenant, make_tenant, wait_until
from tests.e2e.test_llm_nodes import create, final, llm_graph, llm_node, start
from tests.llm_stub import Fault, LlmStub

pytestmark = pytest.mark.e2e

STRICT = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "additionalProperties": False},
        "words": {"type": "integer", "additionalProperties": False},
    },
    "required": ["title", "words"],
    "additionalProperties": False,
}


async def tenant_with(app: httpx.AsyncClient, stack: Stack, values: dict[str, str]) -> Tenant:
    tenant = await make_tenant(stack.database_url)
    for name, value in values.items():
        resp = await app.post("/env-mgmt/", json={"name": name, "value": value}, headers=tenant.headers)
        assert resp.status_code == 200, resp.text
    return tenant


async def run_to(app: httpx.AsyncClient, tenant: Tenant, defn: dict[str, Any], status: str) -> dict[str, Any]:
    wf = await create(app, tenant, defn)
    run: dict[str, Any] = await final(app, tenant, await start(app, tenant, wf), status)
    return run


def anthropic_values(stub: LlmStub, key: str) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": stub.root_url}


async def assert_draft_problem(
    app: httpx.AsyncClient, tenant: Tenant, defn: dict[str, Any], fault: str
) -> None:
    """Saved as a draft with the problem named on the node; running it is refused naming it."""
    resp = await app.post(
        "/wf/", json={"name": f"llm-{uuid.uuid4().hex[:6]}", "definition": defn}, headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    assert [p["node_id"] for p in resp.json()["problems"] if fault in p["detail"]] == ["llm"]
    refused = await app.post(
        f"/wf/{resp.json()['id']}/run/",
        json={"initial_inputs": {"input_node": {"topic": "x"}}},
        headers=tenant.headers,
    )
    assert refused.status_code == 422 and fault in refused.text


def task_of(run: dict[str, Any]) -> dict[str, Any]:
    (task,) = [t for t in run["tasks"] if t["node_id"] == "llm"]
    found: dict[str, Any] = task
    return found


async def test_anthropic_model_goes_through_the_messages_api_with_a_forced_output_tool(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"sk-ant-{uuid.uuid4().hex}"
    tenant = await tenant_with(app_client, stack, anthropic_values(provider, key))
    model = {"model": "anthropic/claude-3-5-sonnet-latest", "max_tokens": 256, "temperature": 0.2}
    run = await run_to(
        app_client,
        tenant,
        llm_graph(
            llm_info=model, few_shot_examples=[{"input": "dogs", "output": '{"title": "D", "words": 1}'}]
        ),
        "COMPLETED",
    )
    assert run["outputs"]["output_node"] == {"title": "stub", "words": 1}
    (seen,) = provider.calls(key)
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == key and "authorization" not in seen.headers
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["model"] == "claude-3-5-sonnet-latest"
    assert seen.body["max_tokens"] == 256 and seen.body["temperature"] == 0.2
    assert seen.body["system"] == "You write about cats."
    assert seen.body["messages"] == [
        {"role": "user", "content": "dogs"},
        {"role": "assistant", "content": '{"title": "D", "words": 1}'},
        {"role": "user", "content": "Topic: cats"},
    ]
    (tool,) = seen.body["tools"]
    assert tool["name"] == "output" and tool["input_schema"] == STRICT
    assert seen.body["tool_choice"] == {"type": "tool", "name": "output"}
    assert task_of(run)["usage"] == {
        "model": "anthropic/claude-3-5-sonnet-latest",
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "cost_usd": pytest.approx((11 * 3.0 + 7 * 15.0) / 1e6),
    }


async def test_anthropic_thinking_sends_the_budget_and_the_schema_in_the_prompt(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"sk-ant-{uuid.uuid4().hex}"
    tenant = await tenant_with(app_client, stack, anthropic_values(provider, key))
    provider.content = '{"title": "deep", "words": 3}'
    model = {"model": "anthropic/claude-3-7-sonnet-latest", "max_tokens": 4096, "temperature": 0.2}
    run = await run_to(
        app_client,
        tenant,
        llm_graph(llm_info=model, enable_thinking=True, thinking_budget_tokens=2048),
        "COMPLETED",
    )
    assert run["outputs"]["output_node"] == {"title": "deep", "words": 3}
    (seen,) = provider.calls(key)
    assert seen.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "temperature" not in seen.body and "tools" not in seen.body
    assert seen.body["system"].startswith("You write about cats.")
    assert json.loads(seen.body["system"].split("adhere to this schema: ", 1)[1]) == STRICT


async def test_thinking_on_a_model_without_it_is_refused_when_saved(
    app_client: httpx.AsyncClient, stack: Stack
) -> None:
    tenant = await make_tenant(stack.database_url)
    fault = "enable_thinking is set but openai/gpt-4o has no thinking mode"
    await assert_draft_problem(app_client, tenant, llm_graph(enable_thinking=True), fault)


@pytest.mark.parametrize(
    ("status", "body", "headers", "outcome", "requests", "message"),
    [
        (401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
         {}, "FAILED", 1, "anthropic refused the credentials (HTTP 401): invalid x-api-key"),
        (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
         {"retry-after": "1"}, "COMPLETED", 2, None),
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
         {}, "COMPLETED", 2, None),
        (500, None, {}, "COMPLETED", 2, None),
    ],
)  # fmt: skip
async def test_anthropic_errors_fail_at_once_or_are_retried_by_their_class(
    app_client: httpx.AsyncClient,
    stack: Stack,
    provider: LlmStub,
    status: int,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    outcome: str,
    requests: int,
    message: str | None,
) -> None:
    key = f"sk-ant-{uuid.uuid4().hex}"
    tenant = await tenant_with(app_client, stack, anthropic_values(provider, key))
    provider.faults.append(Fault(status, body, headers))
    model = {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 64}
    run = await run_to(app_client, tenant, llm_graph(llm_info=model), outcome)
    assert len(provider.calls(key)) == requests
    if message:
        assert message in task_of(run)["error"]
        assert key not in json.dumps(run)
    else:
        assert run["outputs"]["output_node"] == {"title": "stub", "words": 1}


async def test_azure_model_calls_its_deployment_url_with_api_version_and_api_key_header(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"az-{uuid.uuid4().hex}"
    values = {
        "AZURE_OPENAI_API_KEY": key,
        "AZURE_OPENAI_ENDPOINT": provider.root_url,
        "AZURE_OPENAI_API_VERSION": "2024-10-21",
    }
    tenant = await tenant_with(app_client, stack, values)
    model = {"model": "azure/gpt-4", "max_tokens": 32}
    run = await run_to(app_client, tenant, llm_graph(llm_info=model), "COMPLETED")
    assert run["outputs"]["output_node"] == {"title": "stub", "words": 1}
    (seen,) = provider.calls(key)
    assert seen.path == "/openai/deployments/gpt-4/chat/completions?api-version=2024-10-21"
    assert seen.headers["api-key"] == key and "authorization" not in seen.headers
    assert seen.body["response_format"]["json_schema"]["schema"] == STRICT


async def test_gemini_model_calls_its_openai_compatible_endpoint_with_a_strict_schema(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"gm-{uuid.uuid4().hex}"
    base = f"{provider.root_url}/v1beta/openai/"
    tenant = await tenant_with(app_client, stack, {"GEMINI_API_KEY": key, "GEMINI_API_BASE": base})
    model = {"model": "gemini/gemini-2.0-flash", "max_tokens": 32}
    run = await run_to(app_client, tenant, llm_graph(llm_info=model), "COMPLETED")
    assert run["outputs"]["output_node"] == {"title": "stub", "words": 1}
    (seen,) = provider.calls(key)
    assert seen.path == "/v1beta/openai/chat/completions"
    assert seen.body["model"] == "gemini-2.0-flash"
    assert seen.body["response_format"]["type"] == "json_schema"


async def test_deepseek_sends_plain_text_and_ollama_json_mode_with_the_schema_in_the_system_message(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"ds-{uuid.uuid4().hex}"
    values = {
        "DEEPSEEK_API_KEY": key,
        "DEEPSEEK_API_BASE": provider.root_url,
        "OLLAMA_BASE_URL": provider.root_url,
    }
    tenant = await tenant_with(app_client, stack, values)
    # deepseek-chat has no JSON output in PySpur's table: its text is the `output` field.
    provider.content = "plain words"
    text_graph = definition(
        [
            input_node({"topic": "string"}, required=["topic"]),
            llm_node(llm_info={"model": "deepseek/deepseek-chat", "max_tokens": 32}),
            output_node({"output": "Writer.output"}),
        ],
        [link("input_node", "llm"), link("llm", "output_node")],
    )
    run = await run_to(app_client, tenant, text_graph, "COMPLETED")
    assert run["outputs"]["output_node"] == {"output": "plain words"}
    (seen,) = provider.calls(key)
    assert (seen.path, seen.body["model"]) == ("/chat/completions", "deepseek-chat")
    assert seen.headers["authorization"] == f"Bearer {key}" and "response_format" not in seen.body

    provider.reset()
    provider.content = '{"title": "json mode", "words": 2}'
    model = {"model": "ollama/llama3.3:70b", "max_tokens": 32}
    run = await run_to(app_client, tenant, llm_graph(llm_info=model), "COMPLETED")
    assert run["outputs"]["output_node"] == {"title": "json mode", "words": 2}
    (seen,) = provider.calls()
    assert (seen.path, seen.body["model"]) == ("/v1/chat/completions", "llama3.3:70b")
    assert seen.body["response_format"] == {"type": "json_object"}
    system = seen.body["messages"][0]["content"]
    assert json.loads(system.split("adhere to this schema: ", 1)[1]) == STRICT


async def test_url_variables_add_the_file_url_to_the_user_messages(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"sk-url-{uuid.uuid4().hex}"
    tenant = await tenant_with(
        app_client, stack, {"OPENAI_API_KEY": key, "OPENAI_API_BASE": provider.base_url}
    )
    defn = llm_graph(url_variables={"file": "input_node.topic"})
    wf = await create(app_client, tenant, defn)
    url = "https://example.com/cat.png"
    resp = await app_client.post(
        f"/wf/{wf}/start_run/",
        json={"initial_inputs": {"input_node": {"topic": url}}},
        headers=tenant.headers,
    )
    assert resp.status_code == 200, resp.text
    await final(app_client, tenant, resp.json()["id"], "COMPLETED")
    (seen,) = provider.calls(key)
    assert seen.body["messages"][-1]["content"] == [
        {"type": "text", "text": f"Topic: {url}"},
        {"type": "image_url", "image_url": {"url": url}},
    ]

    bad = llm_graph(url_variables={"video": "input_node.topic"})
    await assert_draft_problem(app_client, tenant, bad, "url_variables.video is not supported")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/latest/v1", "link-local address 169.254.169.254"),
        ("http://10.1.2.3:8000/v1", "private address 10.1.2.3"),
        ("http://[::1]:9/v1", "loopback address ::1"),
        ("file:///etc/passwd", "must be an http:// or https:// URL"),
    ],
)
async def test_base_url_to_an_internal_address_is_refused_when_saved(
    app_client: httpx.AsyncClient, stack: Stack, url: str, kind: str
) -> None:
    tenant = await make_tenant(stack.database_url)
    resp = await app_client.post(
        "/env-mgmt/", json={"name": "OPENAI_API_BASE", "value": url}, headers=tenant.headers
    )
    assert resp.status_code == 400, resp.text
    assert kind in resp.text
    if "URL" not in kind:
        assert "LLM_ALLOWED_HOSTS" in resp.text


async def test_base_url_stored_before_the_rule_is_refused_at_call_time_without_a_request(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    tenant = await tenant_with(app_client, stack, {"OPENAI_API_KEY": "sk-egress"})
    # As if saved before the rule existed: straight into the store, past the API's check.
    engine = make_engine(stack.database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            fernet = provider_keys.cipher(stack.settings(provider_keys_secret=PROVIDER_KEYS_SECRET))
            token = fernet.encrypt(b"http://169.254.169.254/v1")
            await keys_repo.store(session, tenant.tenant_id, "OPENAI_API_BASE", token)
    finally:
        await engine.dispose()
    run = await run_to(app_client, tenant, llm_graph(), "FAILED")
    error = task_of(run)["error"]
    assert "OPENAI_API_BASE points at a link-local address" in error and "LLM_ALLOWED_HOSTS" in error
    assert provider.calls() == []


async def test_cancelling_a_run_closes_the_in_flight_anthropic_connection(
    app_client: httpx.AsyncClient, stack: Stack, provider: LlmStub
) -> None:
    key = f"sk-ant-{uuid.uuid4().hex}"
    tenant = await tenant_with(app_client, stack, anthropic_values(provider, key))
    model = {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 64}
    wf = await create(app_client, tenant, llm_graph(llm_info=model))
    provider.latency = 60.0
    run_id = await start(app_client, tenant, wf)
    await wait_until(lambda: _now(bool(provider.calls(key))), within=60)
    resp = await app_client.post(f"/wf/cancel_workflow/{run_id}/", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    await wait_until(lambda: _now(provider.calls(key)[0].disconnected), within=30)
    run = await final(app_client, tenant, run_id, "CANCELED")
    assert not provider.calls(key)[0].answered
    assert task_of(run)["status"] == "CANCELED"


async def _now(value: bool) -> bool:
    return value
