"""Timestamps on the PySpur surface are exactly PySpur 0.1.18's (naive UTC; pause-history times with 'Z');
the v1 surface keeps its timezone-aware format."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.builders import definition, double_graph, input_node, link, node, output_node
from tests.conftest import reaches

pytestmark = pytest.mark.e2e

NAIVE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?$")
WITH_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def _stamps(body: dict[str, Any], *keys: str) -> list[str]:
    return [body[k] for k in keys if body.get(k) is not None]


async def _workflow(api: httpx.AsyncClient, defn: dict[str, Any]) -> str:
    resp = await api.post("/api/wf/", json={"name": f"ts-{uuid.uuid4().hex[:6]}", "definition": defn})
    assert resp.status_code == 200, resp.text
    wf_id: str = resp.json()["id"]
    return wf_id


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_workflow_run_task_and_version_times_are_naive_utc_as_pyspur_sends_them(
    api: httpx.AsyncClient, prefix: str
) -> None:
    wf = await _workflow(api, double_graph())
    before = datetime.now(UTC).replace(tzinfo=None)
    ran = await api.post(f"{prefix}/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 2}}})
    assert ran.status_code == 200, ran.text

    workflow = (await api.get(f"{prefix}/wf/{wf}/")).json()
    [run] = (await api.get(f"{prefix}/wf/{wf}/runs/")).json()
    status = (await api.get(f"{prefix}/run/{run['id']}/status/")).json()
    [version] = (await api.get(f"{prefix}/wf/{wf}/versions/")).json()
    history = (await api.get(f"{prefix}/run/{run['id']}/state_history/")).json()

    stamps = _stamps(workflow, "created_at", "updated_at") + _stamps(run, "start_time", "end_time")
    stamps += _stamps(status["workflow_version"], "created_at", "updated_at")
    stamps += [s for t in status["tasks"] for s in _stamps(t, "start_time", "end_time")]
    stamps += _stamps(version, "created_at", "updated_at") + [h["at"] for h in history]
    assert len(stamps) >= 10
    assert [s for s in stamps if not NAIVE.match(s)] == []
    # What the editor does with them: Date.parse(t + "Z") must give the UTC instant.
    end = datetime.fromisoformat(run["end_time"] + "+00:00").replace(tzinfo=None)
    assert (
        before - timedelta(seconds=5) <= end <= datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=5)
    )


async def test_runs_filter_reads_naive_dates_as_utc(api: httpx.AsyncClient) -> None:
    wf = await _workflow(api, double_graph())
    assert (
        await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    ).status_code == 200
    [run] = (await api.get(f"/wf/{wf}/runs/")).json()
    started = datetime.fromisoformat(run["start_time"])
    around = {
        "start_date": (started - timedelta(seconds=1)).isoformat(),
        "end_date": (started + timedelta(seconds=1)).isoformat(),
    }
    assert [r["id"] for r in (await api.get(f"/wf/{wf}/runs/", params=around)).json()] == [run["id"]]
    later = {"start_date": (started + timedelta(seconds=1)).isoformat()}
    assert (await api.get(f"/wf/{wf}/runs/", params=later)).json() == []


async def test_pause_times_carry_z_while_the_paused_run_itself_is_naive(api: httpx.AsyncClient) -> None:
    defn = definition(
        [
            input_node(),
            node("approve", "HumanInterventionNode", message="ok?"),
            output_node({"x": "approve.x"}),
        ],
        [link("input_node", "approve"), link("approve", "output_node")],
    )
    wf = await _workflow(api, defn)
    started = await api.post(f"/api/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    run_id = started.json()["id"]
    assert NAIVE.match(started.json()["start_time"])
    await reaches(api, run_id, "PAUSED")

    [pause] = (await api.get(f"/api/wf/pause_history/{run_id}/")).json()
    assert WITH_Z.match(pause["pause_time"]), pause
    paused = [p for p in (await api.get("/api/wf/paused_workflows/")).json() if p["run"]["id"] == run_id]
    assert WITH_Z.match(paused[0]["current_pause"]["pause_time"])
    assert NAIVE.match(paused[0]["run"]["start_time"])
    await api.post(f"/api/wf/cancel_workflow/{run_id}/")


async def test_v1_surface_keeps_timezone_aware_times(api: httpx.AsyncClient) -> None:
    wf = await _workflow(api, double_graph())
    resp = await api.get(f"/v1/workflow-definitions/{wf}")
    assert resp.status_code == 200, resp.text
    created = resp.json()["created_at"]
    assert datetime.fromisoformat(created.replace("Z", "+00:00")).tzinfo is not None, created
