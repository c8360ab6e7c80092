"""The API with its embedded worker on (eager starts; a blocking run answered from its own terminal
write): killed mid-run, its runs still end once, on the worker process, and Temporal agrees."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from tests.builders import double_graph
from tests.conftest import Stack, Tenant, api_process, free_port, reaches, wait_until
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e

SLOW = "import time\ntime.sleep({secs})\nreturn {{'y': input_model.input_node.x * 2}}"
EMBEDDED = {"API_EMBEDDED_WORKER": "true"}


async def _execution_status(stack: Stack, run_id: str) -> WorkflowExecutionStatus | None:
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    return (await client.get_workflow_handle(temporal_workflow_id(run_id)).describe()).status


async def _started_run(api: httpx.AsyncClient, created: set[str]) -> str | None:
    for run in (await api.get("/run/", params={"page_size": 50})).json():
        if run["id"] not in created and run["status"] == "RUNNING":
            return str(run["id"])
    return None


# The killed process's workflow task must time out before the worker process takes the run over.
@pytest.mark.timeout(300)
async def test_a_blocking_run_whose_api_is_killed_mid_node_completes_on_the_worker(
    api: httpx.AsyncClient, stack: Stack, tenant: Tenant
) -> None:
    wf = await api.post(
        "/wf/", json={"name": f"emb-{uuid.uuid4().hex[:6]}", "definition": double_graph(SLOW.format(secs=2))}
    )
    wf_id = wf.json()["id"]
    before = {str(r["id"]) for r in (await api.get("/run/", params={"page_size": 50})).json()}
    port = free_port()
    with api_process(stack, port, **EMBEDDED) as proc:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=tenant.headers, timeout=60
        ) as embedded:
            # The embedded worker connects after the port opens; until it polls, starts are not eager.
            await wait_until(lambda: _polling(stack, proc.pid), within=30)
            blocking = asyncio.create_task(
                embedded.post(f"/wf/{wf_id}/run/", json={"initial_inputs": {"input_node": {"x": 5}}})
            )
            run_id = await wait_until(lambda: _started_run(api, before), within=30, interval=0.05)
            devstack.stop(proc, sig=9)
            with contextlib.suppress(httpx.HTTPError):
                await blocking
    final = await reaches(api, run_id, "COMPLETED", within=90)
    assert final["outputs"]["output_node"] == {"y": 10}
    assert await _execution_status(stack, run_id) == WorkflowExecutionStatus.COMPLETED


async def test_a_blocking_run_answered_in_process_reports_what_was_stored(
    api: httpx.AsyncClient, stack: Stack, tenant: Tenant
) -> None:
    wf = await api.post("/wf/", json={"name": f"emb-{uuid.uuid4().hex[:6]}", "definition": double_graph()})
    wf_id = wf.json()["id"]
    port = free_port()
    with api_process(stack, port, **EMBEDDED) as proc:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=tenant.headers, timeout=60
        ) as embedded:
            await wait_until(lambda: _polling(stack, proc.pid), within=30)
            answers = [
                (
                    await embedded.post(
                        f"/wf/{wf_id}/run/", json={"initial_inputs": {"input_node": {"x": i}}}
                    )
                ).json()
                for i in range(5)
            ]
    runs = (await api.get(f"/wf/{wf_id}/runs/")).json()
    assert len(runs) == 5
    stored = sorted(r["outputs"]["output_node"]["y"] for r in runs if r["status"] == "COMPLETED")
    assert sorted(a["output_node"]["y"] for a in answers) == stored == [0, 2, 4, 6, 8]
    for r in runs:
        assert await _execution_status(stack, str(r["id"])) == WorkflowExecutionStatus.COMPLETED


async def _polling(stack: Stack, pid: int) -> bool:
    """Whether the process `pid` (its worker's default identity is `pid@host`) polls the eager queue."""
    client = await Client.connect(stack.temporal_address)
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=f"{stack.task_queue}-eager"),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return any(p.identity.startswith(f"{pid}@") for p in resp.pollers)
