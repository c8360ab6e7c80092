"""Runs through HTTP against real Temporal, PostgreSQL and a worker process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import double_graph
from tests.conftest import Tenant, reaches, wait_until

pytestmark = pytest.mark.e2e


async def create(api: httpx.AsyncClient, defn: dict[str, Any], name: str = "wf") -> str:
    resp = await api.post("/wf/", json={"name": name, "definition": defn})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


async def test_blocking_run_returns_outputs_keyed_by_node_id(api: httpx.AsyncClient) -> None:
    wf = await create(api, double_graph())
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 21}}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["py1"] == {"y": 42}
    assert body["output_node"] == {"y": 42}
    assert body["input_node"] == {"x": 21}


async def test_completed_run_is_stored_with_tasks_version_and_full_progress(api: httpx.AsyncClient) -> None:
    wf = await create(api, double_graph())
    await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 2}}})
    runs = (await api.get(f"/wf/{wf}/runs/")).json()
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "COMPLETED"
    assert run["percentage_complete"] == 100.0
    assert run["outputs"]["output_node"] == {"y": 4}
    assert run["workflow_version"]["version"] == 1
    tasks = {t["node_id"]: t for t in run["tasks"]}
    assert [t["node_id"] for t in run["tasks"]] == ["input_node", "py1", "output_node"]
    assert tasks["py1"]["inputs"] == {"input_node": {"x": 2}}
    assert tasks["py1"]["outputs"] == {"y": 4}
    assert all(t["status"] == "COMPLETED" and t["end_time"] for t in run["tasks"])
    assert run["duration"] is not None and run["end_time"] is not None


async def test_start_run_returns_at_once_and_completes(api: httpx.AsyncClient) -> None:
    wf = await create(api, double_graph())
    resp = await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 5}}})
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["id"]
    assert resp.json()["status"] in ("PENDING", "RUNNING", "COMPLETED")

    async def done() -> dict[str, Any] | None:
        r = (await api.get(f"/run/{run_id}/status/")).json()
        return r if r["status"] == "COMPLETED" else None

    run = await wait_until(done)
    assert run["outputs"]["py1"] == {"y": 10}


async def test_failing_node_fails_run_at_once_and_cancels_downstream(api: httpx.AsyncClient) -> None:
    wf = await create(api, double_graph('raise ValueError("bad value")'))
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    assert resp.status_code == 200
    assert "py1" not in resp.json()
    run = (await api.get(f"/wf/{wf}/runs/")).json()[0]
    assert run["status"] == "FAILED"
    tasks = {t["node_id"]: t for t in run["tasks"]}
    assert tasks["py1"]["status"] == "FAILED"
    assert "bad value" in tasks["py1"]["error"]
    assert tasks["output_node"]["status"] == "CANCELED"
    assert tasks["output_node"]["error"] == "Upstream failure"
    assert run["percentage_complete"] < 100


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        (None, "input_node"),
        ({}, "input_node"),
        ({"input_node": {}}, "x"),
        ({"input_node": {"x": "seven"}}, "x"),
    ],
)
async def test_missing_or_malformed_inputs_give_422_and_create_no_run(
    api: httpx.AsyncClient, inputs: Any, fragment: str
) -> None:
    wf = await create(api, double_graph())
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": inputs})
    assert resp.status_code == 422, resp.text
    assert fragment in str(resp.json()["detail"])
    assert (await api.get(f"/wf/{wf}/runs/")).json() == []


async def test_a_version_is_created_per_new_definition_hash_and_reused(api: httpx.AsyncClient) -> None:
    wf = await create(api, double_graph())
    body = {"initial_inputs": {"input_node": {"x": 1}}}
    await api.post(f"/wf/{wf}/run/", json=body)
    await api.post(f"/wf/{wf}/run/", json=body)
    changed = double_graph('return {"y": input_model.input_node.x * 3}')
    await api.put(f"/wf/{wf}/", json={"name": "wf-v2", "definition": changed})
    out = (await api.post(f"/wf/{wf}/run/", json=body)).json()
    assert out["py1"] == {"y": 3}
    versions = (await api.get(f"/wf/{wf}/versions/")).json()
    assert [v["version"] for v in versions] == [2, 1]
    await api.put(f"/wf/{wf}/", json={"name": "wf-v2", "definition": double_graph()})
    await api.post(f"/wf/{wf}/run/", json=body)
    assert len((await api.get(f"/wf/{wf}/versions/")).json()) == 2


async def test_runs_are_invisible_to_other_tenants(api: httpx.AsyncClient, other_tenant: Tenant) -> None:
    wf = await create(api, double_graph())
    run = (await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})).json()
    hdr = other_tenant.headers
    assert (await api.get(f"/run/{run['id']}/", headers=hdr)).status_code == 404
    assert (await api.get(f"/wf/{wf}/", headers=hdr)).status_code == 404
    assert (
        await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}}, headers=hdr)
    ).status_code == 404
    assert run["id"] not in {r["id"] for r in (await api.get("/run/", headers=hdr)).json()}


async def test_delete_run_is_refused_while_in_progress_and_allowed_after(api: httpx.AsyncClient) -> None:
    wf = await create(api, double_graph("import time\ntime.sleep(1.5)\nreturn {'y': 1}"))
    run = (await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})).json()
    assert (await api.delete(f"/run/{run['id']}/")).status_code == 409

    await reaches(api, run["id"], "COMPLETED")
    assert (await api.delete(f"/run/{run['id']}/")).status_code == 204
    assert (await api.get(f"/run/{run['id']}/")).status_code == 404


async def test_run_tasks_and_children_endpoints(api: httpx.AsyncClient) -> None:
    wf = await create(api, double_graph())
    parent = (
        await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    ).json()
    child = (
        await api.post(
            f"/wf/{wf}/start_run/",
            json={"initial_inputs": {"input_node": {"x": 2}}, "parent_run_id": parent["id"]},
        )
    ).json()
    children = (await api.get(f"/run/{parent['id']}/children/")).json()
    assert [c["id"] for c in children] == [child["id"]]
    tasks = (await api.get(f"/run/{parent['id']}/tasks/")).json()
    assert isinstance(tasks, list) and {t["node_id"] for t in tasks} <= {"input_node", "py1", "output_node"}
    top = (await api.get("/run/", params={"page_size": 100})).json()
    assert child["id"] not in {r["id"] for r in top}
