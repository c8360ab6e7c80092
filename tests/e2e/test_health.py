"""`/health` names what is unreachable; the API starts even while Temporal is down."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Stack, free_port

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
