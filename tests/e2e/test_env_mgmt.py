"""PySpur's `/env-mgmt/` over the tenants' encrypted provider keys."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text

from db.session import make_engine
from tests.conftest import Stack, add_user, make_tenant

pytestmark = pytest.mark.e2e


async def test_keys_are_set_masked_per_tenant_and_deleted(
    app_client: httpx.AsyncClient, stack: Stack
) -> None:
    owner, other = await make_tenant(stack.database_url), await make_tenant(stack.database_url)
    key = f"sk-{uuid.uuid4().hex}"
    names = (await app_client.get("/env-mgmt/", headers=owner.headers)).json()
    assert {"OPENAI_API_KEY", "OPENAI_API_BASE", "ANTHROPIC_API_KEY", "OLLAMA_BASE_URL"} <= set(names)
    unset = await app_client.get("/env-mgmt/OPENAI_API_KEY", headers=owner.headers)
    assert unset.json() == {"name": "OPENAI_API_KEY", "value": ""}

    resp = await app_client.post(
        "/api/env-mgmt/", json={"name": "OPENAI_API_KEY", "value": key}, headers=owner.headers
    )
    assert resp.status_code == 200, resp.text
    got = (await app_client.get("/api/env-mgmt/OPENAI_API_KEY", headers=owner.headers)).json()["value"]
    assert got == key[:4] + "*" * (len(key) - 8) + key[-4:]
    base = "http://127.0.0.1:9/v1"
    await app_client.post(
        "/env-mgmt/", json={"name": "OPENAI_API_BASE", "value": base}, headers=owner.headers
    )
    assert (await app_client.get("/env-mgmt/OPENAI_API_BASE", headers=owner.headers)).json()["value"] == base
    assert (await app_client.get("/env-mgmt/OPENAI_API_KEY", headers=other.headers)).json()["value"] == ""

    engine = make_engine(stack.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            stored = (
                await conn.execute(
                    text(
                        "SELECT ciphertext FROM provider_keys WHERE tenant_id = :t AND name = 'OPENAI_API_KEY'"
                    ),
                    {"t": owner.tenant_id},
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert key.encode() not in bytes(stored)

    assert (await app_client.delete("/env-mgmt/OPENAI_API_KEY", headers=owner.headers)).status_code == 200
    assert (await app_client.get("/env-mgmt/OPENAI_API_KEY", headers=owner.headers)).json()["value"] == ""
    again = await app_client.delete("/env-mgmt/OPENAI_API_KEY", headers=owner.headers)
    assert again.status_code == 404 and "not set" in again.text


async def test_bad_key_requests_get_4xx_naming_the_problem(
    app_client: httpx.AsyncClient, stack: Stack
) -> None:
    owner = await make_tenant(stack.database_url)
    member = await add_user(stack.database_url, owner, "USER")
    unknown = await app_client.post("/env-mgmt/", json={"name": "PATH", "value": "x"}, headers=owner.headers)
    assert unknown.status_code == 404 and "OPENAI_API_KEY" in unknown.text
    empty = await app_client.post(
        "/env-mgmt/", json={"name": "OPENAI_API_KEY", "value": ""}, headers=owner.headers
    )
    assert empty.status_code == 400 and "Value is required" in empty.text
    forbidden = await app_client.post(
        "/env-mgmt/", json={"name": "OPENAI_API_KEY", "value": "sk-x"}, headers=member.headers
    )
    assert forbidden.status_code == 403 and "owner or admin" in forbidden.text
    assert (await app_client.get("/env-mgmt/OPENAI_API_KEY", headers=member.headers)).status_code == 200
    stranger = {"Authorization": "Bearer not-a-key"}
    assert (await app_client.get("/env-mgmt/OPENAI_API_KEY", headers=stranger)).status_code == 401


async def test_anon_data_says_telemetry_is_off_and_providers_lists_the_llm_providers(
    app_client: httpx.AsyncClient, stack: Stack
) -> None:
    owner = await make_tenant(stack.database_url)
    assert (await app_client.get("/api/env-mgmt/anon-data/", headers=owner.headers)).json() is True
    providers = (await app_client.get("/env-mgmt/providers", headers=owner.headers)).json()
    assert [p["id"] for p in providers] == [
        "openai",
        "azure-openai",
        "anthropic",
        "gemini",
        "deepseek",
        "ollama",
    ]
    # The settings dialog groups providers by category ("llm" is "AI Models") and keeps typed values only
    # for keys that GET /env-mgmt/ lists: a parameter missing from that list could never be saved.
    assert all(set(p) == {"id", "name", "description", "category", "icon", "parameters"} for p in providers)
    assert {p["category"] for p in providers} == {"llm"}
    assert {x["name"] for p in providers for x in p["parameters"]} == set(
        (await app_client.get("/env-mgmt/", headers=owner.headers)).json()
    )
    assert providers[0]["parameters"][0] == {
        "name": "OPENAI_API_KEY",
        "description": "OpenAI API Key",
        "required": True,
        "type": "password",
    }
