"""`GET /run/{id}/state_history/`: how a run reached its state, who or what moved it, tenant-scoped."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import Tenant, reaches
from tests.e2e.test_human_steps import decision, gated, start

pytestmark = pytest.mark.e2e


async def test_a_decided_pause_shows_who_resumed_the_run_between_the_engines_moves(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    run_id, _ = await start(api, gated())
    resp = await api.post(f"/wf/process_pause_action/{run_id}/", json=decision("APPROVE"))
    assert resp.status_code == 200, resp.text
    await reaches(api, run_id, "COMPLETED")
    resp = await api.get(f"/run/{run_id}/state_history/")
    assert resp.status_code == 200, resp.text
    moves = [(h["from_state"], h["to_state"], h["cause"]) for h in resp.json()]
    assert {h["axis"] for h in resp.json()} == {"status"}
    assert moves[0] == (None, "PENDING", str(tenant.user_id))  # created by the caller
    assert resp.json()[0]["reason"] == "Created"
    assert moves[1][0] == "PENDING"
    assert moves[-3:] == [
        (moves[-3][0], "PAUSED", "engine"),
        ("PAUSED", "RUNNING", str(tenant.user_id)),
        ("RUNNING", "COMPLETED", "engine"),
    ]
    resumed = resp.json()[-2]
    assert resumed["reason"] == "APPROVE (pause 1)"
    assert resumed["attempt"] == 1
    assert resumed["at"] <= resp.json()[-1]["at"]


async def test_a_canceled_pause_ends_with_the_engines_terminal_write(api: httpx.AsyncClient) -> None:
    run_id, _ = await start(api, gated())
    resp = await api.post(f"/wf/cancel_workflow/{run_id}/")
    assert resp.status_code == 200, resp.text
    await reaches(api, run_id, "CANCELED")
    last = (await api.get(f"/run/{run_id}/state_history/")).json()[-1]
    # The API asks Temporal to cancel; the execution itself writes the terminal state.
    assert (last["from_state"], last["to_state"], last["cause"]) == ("PAUSED", "CANCELED", "engine")
    assert last["reason"] == "Run canceled"


async def test_another_tenants_run_history_is_not_found(
    app_client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    app_client.headers.update(tenant.headers)
    run_id, _ = await start(app_client, gated())
    theirs = await app_client.get(f"/run/{run_id}/state_history/", headers=other_tenant.headers)
    assert theirs.status_code == 404
    assert (await app_client.get(f"/run/{uuid.uuid4()}/state_history/")).status_code == 404
    await app_client.post(f"/wf/cancel_workflow/{run_id}/")
