"""The blocking run's bounded wait, and the admin command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.builders import double_graph
from tests.conftest import ROOT, Stack, Tenant, reaches

pytestmark = pytest.mark.e2e


async def test_blocking_run_answers_202_with_the_run_when_the_wait_runs_out(
    stack: Stack, tenant: Tenant
) -> None:
    from api.app import create_app

    app = create_app(stack.settings(run_blocking_timeout_seconds=0.5))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=tenant.headers, timeout=30
        ) as api,
    ):
        code = "import time\ntime.sleep(2)\nreturn {'y': 1}"
        wf = (
            await api.post(
                "/wf/", json={"name": f"slow-{uuid.uuid4().hex[:6]}", "definition": double_graph(code)}
            )
        ).json()
        resp = await api.post(f"/wf/{wf['id']}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
        assert resp.status_code == 202
        body = resp.json()
        assert body["status"] in ("PENDING", "RUNNING")

        await reaches(api, body["id"], "COMPLETED")


def admin(stack: Stack, *args: str) -> str:
    """Run the admin command line against the test database; returns what it printed."""
    done = subprocess.run(
        [sys.executable, "admin.py", *args],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def printed_key(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("key"))


def test_admin_cli_creates_tenants_and_users_with_keys(stack: Stack) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    assert printed_key(admin(stack, "create-tenant", name, "--owner-email", "o@example.com")).startswith(
        "ks_"
    )
    assert "role USER" in admin(stack, "create-user", name, "u@example.com", "--role", "USER")
    assert "create-tenant" in admin(stack, "--help")


async def test_key_from_the_cli_reaches_only_its_own_tenant(
    stack: Stack, app_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    out = await asyncio.to_thread(
        admin, stack, "create-tenant", f"iso-{uuid.uuid4().hex[:6]}", "--owner-email", "o@x.io"
    )
    mine = (await app_client.post("/wf/", json={"name": "mine"}, headers=tenant.headers)).json()
    theirs = await app_client.get(
        f"/wf/{mine['id']}/", headers={"Authorization": f"Bearer {printed_key(out)}"}
    )
    assert theirs.status_code == 404
    own = await app_client.get("/wf/", headers={"Authorization": f"Bearer {printed_key(out)}"})
    assert own.status_code == 200 and own.json() == []
