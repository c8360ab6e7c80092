"""LLM calls wait on a task queue of their own: one worker holds as many as
WORKER_MAX_CONCURRENT_LLM_CALLS, whatever its WORKER_MAX_CONCURRENT_ACTIVITIES (which bounds the
sandboxed Python nodes)."""

from __future__ import annotations

import asyncio
import sys
import uuid

import httpx
import pytest

import devstack
from tests.conftest import Stack, reaches, wait_until
from tests.e2e.test_llm_nodes import create, keyed_tenant, llm_graph, start
from tests.llm_stub import LlmStub

pytestmark = pytest.mark.e2e


async def test_a_worker_holds_llm_calls_beyond_its_activity_slots_up_to_its_llm_slots(
    stack: Stack, provider: LlmStub
) -> None:
    from api.app import create_app

    queue = f"slots-{uuid.uuid4().hex[:8]}"
    proc = devstack.spawn(
        [sys.executable, "worker.py"],
        stack.tmp / f"{queue}.log",
        stack.env(
            TEMPORAL_TASK_QUEUE=queue,
            WORKER_MAX_CONCURRENT_ACTIVITIES="1",
            WORKER_MAX_CONCURRENT_LLM_CALLS="3",
        ),
    )
    try:
        app = create_app(stack.settings(temporal_task_queue=queue))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=90
            ) as client,
        ):
            tenant = await keyed_tenant(stack, client, provider, "sk-slots")
            wf = await create(client, tenant, llm_graph())
            provider.latency = 3.0
            provider.peak = 0
            runs = [await start(client, tenant, wf, f"topic {i}") for i in range(5)]

            async def three_waiting() -> bool:
                return provider.in_flight >= 3

            await wait_until(three_waiting, within=60)
            client.headers.update(tenant.headers)
            for run_id in runs:
                await reaches(client, run_id, "COMPLETED", within=60)
            assert provider.peak == 3  # beyond the one activity slot, and no more than the LLM slots
            assert len(provider.calls()) == 5
    finally:
        devstack.stop(proc)
        await asyncio.sleep(0)
