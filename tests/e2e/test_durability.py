"""Durability: kill the worker, restart the API, terminate from Temporal; runs finish and the DB agrees."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.reconciler import reconcile_once
from db.session import make_engine, make_session_factory
from telemetry.metrics import get_metrics
from tests.builders import double_graph
from tests.conftest import Stack, Tenant, api_process, free_port, reaches, wait_until
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e

SLOW = "import time\ntime.sleep({secs})\nreturn {{'y': input_model.input_node.x * 2}}"


async def create(api: httpx.AsyncClient, defn: dict[str, Any]) -> str:
    resp = await api.post("/wf/", json={"name": f"dur-{uuid.uuid4().hex[:6]}", "definition": defn})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


async def temporal(stack: Stack) -> Client:
    return await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)


async def status_of(api: httpx.AsyncClient, run_id: str) -> str:
    return str((await api.get(f"/run/{run_id}/")).json()["status"])


async def node_running(api: httpx.AsyncClient, run_id: str, node_id: str = "py1") -> None:
    async def running() -> bool:
        tasks = (await api.get(f"/run/{run_id}/tasks/")).json()
        return any(t["node_id"] == node_id and t["status"] == "RUNNING" for t in tasks)

    await wait_until(running)


async def test_run_completes_after_worker_is_killed_mid_python_node(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    wf = await create(api, double_graph(SLOW.format(secs=3)))
    run = (await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 4}}})).json()
    await node_running(api, run["id"])
    assert (await status_of(api, run["id"])) == "RUNNING"
    stack.kill_workers()
    await asyncio.sleep(0.5)
    stack.start_worker()
    final = await reaches(api, run["id"], "COMPLETED", within=60)
    assert final["outputs"]["output_node"] == {"y": 8}
    handle = (await temporal(stack)).get_workflow_handle(temporal_workflow_id(run["id"]))
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_runs_in_flight_complete_across_an_api_restart(stack: Stack, tenant: Tenant) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with api_process(stack, port):
        async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=30) as client:
            wf = await create(client, double_graph(SLOW.format(secs=1.5)))
            ids = [
                (
                    await client.post(
                        f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": i}}}
                    )
                ).json()["id"]
                for i in range(3)
            ]
    with api_process(stack, port):
        async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=30) as client:

            async def all_done() -> bool:
                return all([(await status_of(client, rid)) == "COMPLETED" for rid in ids])

            await wait_until(all_done, within=60)
            outs = [(await client.get(f"/run/{rid}/")).json()["outputs"]["py1"]["y"] for rid in ids]
            assert sorted(outs) == [0, 2, 4]


async def test_reconciler_repairs_a_run_terminated_in_temporal(api: httpx.AsyncClient, stack: Stack) -> None:
    wf = await create(api, double_graph(SLOW.format(secs=30)))
    run = (await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})).json()
    handle = (await temporal(stack)).get_workflow_handle(temporal_workflow_id(run["id"]))
    await handle.terminate(reason="operator stop")
    # The worker's reconciler only looks at runs older than its grace period; run it here with none.

    engine = make_engine(stack.database_url, pool_size=1)
    try:
        repaired = await reconcile_once(
            make_session_factory(engine), await temporal(stack), grace=timedelta(0)
        )
    finally:
        await engine.dispose()
    assert repaired >= 1
    body = (await api.get(f"/run/{run['id']}/")).json()
    assert body["status"] == "CANCELED"
    assert body["error"] == "Terminated in Temporal"
    assert all(t["status"] in ("COMPLETED", "CANCELED") for t in body["tasks"]), body["tasks"]


async def test_operators_find_runs_by_search_attributes_and_see_node_titles(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    wf = await create(api, double_graph())
    await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    run_id = (await api.get(f"/wf/{wf}/runs/")).json()[0]["id"]
    client = await temporal(stack)

    async def found() -> list[Any]:
        return [
            w async for w in client.list_workflows(f"PySpurRunId = '{run_id}' AND PySpurStatus = 'COMPLETED'")
        ]

    listed = await wait_until(found, within=20)
    assert listed[0].id == temporal_workflow_id(run_id)
    by_wf = [w async for w in client.list_workflows(f"PySpurWorkflowId = '{wf}'")]
    assert len(by_wf) == 1
    handle = client.get_workflow_handle(temporal_workflow_id(run_id))
    desc = await handle.describe()
    assert (await desc.memo_value("workflow_id")) == wf
    history = await handle.fetch_history()
    summaries = [
        pydantic_data_converter.payload_converter.from_payload(e.user_metadata.summary, str)
        for e in history.events
        # Short nodes run as local activities (marker events), long ones as activities; both carry the title.
        if e.HasField("user_metadata") and e.user_metadata.HasField("summary")
    ]
    assert "py1" in summaries


async def test_run_completes_after_the_temporal_server_restarts_mid_node(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    wf = await create(api, double_graph(SLOW.format(secs=3)))
    run = (await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 5}}})).json()
    await node_running(api, run["id"])
    stack.kill_temporal()
    await asyncio.sleep(1.0)
    stack.start_temporal()
    final = await reaches(api, run["id"], "COMPLETED", within=90)
    assert final["outputs"]["output_node"] == {"y": 10}
    handle = (await temporal(stack)).get_workflow_handle(temporal_workflow_id(run["id"]))
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_batch_completes_after_the_worker_is_killed_midway_without_losing_or_repeating_rows(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    rows = 200  # five chunks of 40 (the test stack's BATCH_CHUNK_ROWS): crosses continue-as-new
    r = await api.post(
        "/ds/",
        params={"name": f"kill-{uuid.uuid4().hex[:6]}"},
        files={"file": ("rows.csv", ("x\n" + "".join(f"{i}\n" for i in range(rows))).encode())},
    )
    assert r.status_code == 200, r.text
    wf = await create(api, double_graph(SLOW.format(secs=0.05)))
    parent = (
        await api.post(
            f"/wf/{wf}/start_batch_run/", json={"dataset_id": r.json()["id"], "mini_batch_size": 4}
        )
    ).json()

    async def midway() -> bool:
        done = (await api.get(f"/run/{parent['id']}/")).json()["rows_done"] or 0
        return 20 <= done < rows

    await wait_until(midway, within=60, interval=0.05)
    stack.kill_workers()
    await asyncio.sleep(0.5)
    stack.start_worker()
    final = await reaches(api, parent["id"], "COMPLETED", within=120)
    assert (final["rows_done"], final["rows_failed"]) == (rows, 0)
    download = await api.get(f"/of/{parent['output_file_id']}/download/")
    lines = [line for line in download.text.splitlines() if line]
    parsed = [json.loads(line) for line in lines]
    assert [p["_row"] for p in parsed] == list(range(rows))
    assert [p["py1"]["y"] for p in parsed] == [2 * i for i in range(rows)]
    children = (await api.get(f"/run/{parent['id']}/children/", params={"page_size": 100})).json()
    children += (await api.get(f"/run/{parent['id']}/children/", params={"page_size": 100, "page": 2})).json()
    assert len({c["id"] for c in children}) == rows
    handle = (await temporal(stack)).get_workflow_handle(temporal_workflow_id(parent["id"]))
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_reconciler_ends_an_execution_whose_workflow_task_keeps_failing_fails_its_run_and_counts_it(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """A workflow task that fails the same way every time (here: an input the workflow code raises on)
    is retried by Temporal for ever; the reconciler sees the repeated failure, ends the execution and
    fails the run with the failure's message, so the database and Temporal agree."""
    from workflows.contracts import RunInput
    from workflows.run_workflow import RunWorkflow

    wf = await create(api, double_graph(SLOW.format(secs=30)))
    run = (await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})).json()
    client = await temporal(stack)
    wid = temporal_workflow_id(run["id"])
    handle = client.get_workflow_handle(wid)
    history = await handle.fetch_history()
    started = history.events[0]
    [payload] = started.workflow_execution_started_event_attributes.input.payloads
    inp = client.data_converter.payload_converter.from_payload(payload, RunInput)
    await handle.terminate(reason="replaced by a broken execution")
    broken = inp.model_copy(update={"target_node_id": "no-such-node"})
    await client.start_workflow(RunWorkflow.run, broken, id=wid, task_queue=stack.task_queue)

    async def attempts() -> int:
        desc = await handle.describe()
        attempt = desc.raw_description.pending_workflow_task.attempt
        return attempt if attempt >= 3 else 0

    await wait_until(attempts, within=60, interval=0.5)
    get_metrics()  # the reconciler counts on this process's registry

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(f"durable_runs_{name}") or 0.0

    ended_before = sample("workflow_task_failures_ended_total")
    engine = make_engine(stack.database_url, pool_size=1)
    try:
        sessions = make_session_factory(engine)
        # Below the limit it is left alone, but counted as retrying.
        await reconcile_once(sessions, client, grace=timedelta(0), task_failures=1000, limit=100_000)
        assert sample("workflow_tasks_retrying") >= 1
        assert (await api.get(f"/run/{run['id']}/")).json()["status"] in ("PENDING", "RUNNING")
        await reconcile_once(sessions, client, grace=timedelta(0), task_failures=3, limit=100_000)
    finally:
        await engine.dispose()
    assert sample("workflow_task_failures_ended_total") == ended_before + 1
    body = (await api.get(f"/run/{run['id']}/")).json()
    assert body["status"] == "FAILED"
    assert "workflow task failed" in body["error"] and "no-such-node" in body["error"], body["error"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
