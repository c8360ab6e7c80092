"""Which task queue a run starts on when its API hosts a worker, and that such a run outlives that API.

An API with an embedded worker starts small runs eagerly on the eager queue, which only its worker and
the worker processes poll; a run with a larger input goes to the shared queue, which the API never
polls (decoding it and running its nodes there would stall the API's requests).
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from tests.builders import definition, input_node, link, node, output_node
from tests.conftest import Stack, Tenant, api_process, free_port, reaches, wait_until
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e

EAGER_MAX_BYTES = 8192


@pytest.fixture(scope="module")
async def temporal(stack: Stack) -> Client:
    return await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)


@pytest.fixture(scope="module")
def embedded_api(stack: Stack) -> Iterator[subprocess.Popen[bytes]]:
    """An API process hosting a worker, as `make run` runs it (the suite's APIs host none)."""
    port = free_port()
    with api_process(
        stack, port, API_EMBEDDED_WORKER="true", API_EAGER_MAX_BYTES=str(EAGER_MAX_BYTES)
    ) as proc:
        proc.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        yield proc


@pytest.fixture(scope="module")
async def via_embedded(
    embedded_api: subprocess.Popen[bytes], tenant: Tenant, temporal: Client, stack: Stack
) -> AsyncIterator[httpx.AsyncClient]:
    # Its worker connects after the API is up: wait until it polls the eager queue.
    await wait_until(lambda: _polls(temporal, stack.settings().eager_task_queue, embedded_api.pid), within=60)
    base: str = embedded_api.base_url  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=60) as client:
        yield client


async def _polls(temporal: Client, queue: str, pid: int) -> bool:
    resp = await temporal.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=temporal.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return any(p.identity.startswith(f"{pid}@") for p in resp.pollers)


def _gated() -> dict[str, Any]:
    return definition(
        [
            input_node(),
            node("approve", "HumanInterventionNode", message="Is x right?"),
            output_node({"x": "approve.input_node.x"}),
        ],
        [link("input_node", "approve"), link("approve", "output_node")],
    )


async def _start_paused(client: httpx.AsyncClient, api: httpx.AsyncClient, inputs: dict[str, Any]) -> str:
    resp = await api.post("/wf/", json={"name": f"eager-{uuid.uuid4().hex[:6]}", "definition": _gated()})
    assert resp.status_code == 200, resp.text
    started = await client.post(
        f"/wf/{resp.json()['id']}/start_run/", json={"initial_inputs": {"input_node": inputs}}
    )
    assert started.status_code == 200, started.text
    run_id: str = started.json()["id"]
    await reaches(api, run_id, "PAUSED")
    return run_id


async def _queue_of(temporal: Client, run_id: str) -> str:
    desc = await temporal.get_workflow_handle(temporal_workflow_id(run_id)).describe()
    return str(desc.raw_description.execution_config.task_queue.name)


async def _approve(api: httpx.AsyncClient, run_id: str) -> None:
    resp = await api.post(
        f"/wf/process_pause_action/{run_id}/", json={"inputs": {}, "user_id": "alice", "action": "APPROVE"}
    )
    assert resp.status_code == 200, resp.text
    await reaches(api, run_id, "COMPLETED")


async def test_a_large_start_goes_to_the_shared_queue_not_the_apis_worker(
    via_embedded: httpx.AsyncClient, api: httpx.AsyncClient, temporal: Client, stack: Stack
) -> None:
    run_id = await _start_paused(via_embedded, api, {"x": 1, "pad": "p" * (2 * EAGER_MAX_BYTES)})
    assert await _queue_of(temporal, run_id) == stack.settings().temporal_task_queue
    await _approve(api, run_id)


async def test_a_small_run_started_eagerly_goes_on_in_the_worker_processes_after_its_api_is_killed(
    via_embedded: httpx.AsyncClient,
    embedded_api: subprocess.Popen[bytes],
    api: httpx.AsyncClient,
    temporal: Client,
    stack: Stack,
) -> None:
    run_id = await _start_paused(via_embedded, api, {"x": 1})
    assert await _queue_of(temporal, run_id) == stack.settings().eager_task_queue
    devstack.stop(embedded_api, sig=signal.SIGKILL)  # the API and its sandbox processes, at once
    # The decision's workflow task was sticky to the dead API's worker; after the sticky timeout it
    # goes to the eager queue, where the worker processes take it.
    await _approve(api, run_id)
