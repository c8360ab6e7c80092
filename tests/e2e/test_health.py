"""`/health` names what is unreachable; the API starts even while Temporal is down."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Stack, Tenant, free_port

pytestmark = pytest.mark.e2e


async def test_health_is_503_naming_temporal_when_it_is_unreachable(stack: Stack) -> None:
    from api.app import create_app

    app = create_app(stack.settings(temporal_address=f"127.0.0.1:{free_port()}"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        resp = await client.get("/health")
    assert resp.status_code == 503
    problems = resp.json()["problems"]
    assert any(p.startswith("temporal") for p in problems)
    assert not any(p.startswith("database") for p in problems)


async def test_a_run_started_while_temporal_was_never_reached_is_503_and_stored_failed(
    stack: Stack, tenant: Tenant
) -> None:
    """An API that started while Temporal was away (seen by the chaos soak): the start answers 503
    with Retry-After, and the run it stored ends FAILED at once instead of staying PENDING."""
    from api.app import create_app
    from tests.builders import double_graph

    app = create_app(stack.settings(temporal_address=f"127.0.0.1:{free_port()}"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=tenant.headers) as client,
    ):
        created = await client.post("/wf/", json={"name": "away", "definition": double_graph()})
        assert created.status_code == 200, created.text
        workflow_id = created.json()["id"]
        resp = await client.post(
            f"/wf/{workflow_id}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}}
        )
        assert resp.status_code == 503 and resp.headers["retry-after"], resp.text
        runs = (await client.get(f"/wf/{workflow_id}/runs/")).json()
    assert [r["status"] for r in runs] == ["FAILED"]
    assert runs[0]["error"].startswith("Could not start")
