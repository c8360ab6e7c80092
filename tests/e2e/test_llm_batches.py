"""A batch over a dataset whose graph has an LLM node: each row's run records its LLM usage (tokens
and cost) on its task, as a single run does."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import Stack, reaches
from tests.e2e.test_batches import make_dataset, make_workflow, start_batch
from tests.e2e.test_llm_nodes import keyed_tenant, llm_graph
from tests.llm_stub import LlmStub

pytestmark = pytest.mark.e2e


async def test_batch_rows_record_the_llm_usage_of_their_tasks(
    app_client: httpx.AsyncClient, stack: Stack, stub: LlmStub
) -> None:
    key = f"sk-batch-{uuid.uuid4().hex}"
    tenant = await keyed_tenant(stack, app_client, stub, key)
    app_client.headers.update(tenant.headers)
    dataset = await make_dataset(app_client, b"topic\ncats\ndogs\nbirds\n")
    parent = await start_batch(app_client, await make_workflow(app_client, llm_graph()), dataset, size=2)
    await reaches(app_client, parent["id"], "COMPLETED", within=90)
    assert len(stub.calls(key)) == 3

    children = (await app_client.get(f"/run/{parent['id']}/children/", params={"page_size": 10})).json()
    assert len(children) == 3
    for child in children:
        (task,) = [t for t in child["tasks"] if t["node_id"] == "llm"]
        assert task["usage"] == {
            "model": "openai/gpt-4o",
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "cost_usd": pytest.approx((11 * 2.5 + 7 * 10.0) / 1e6),
        }
        status = (await app_client.get(f"/run/{child['id']}/status/")).json()
        assert (status["usage"]["prompt_tokens"], status["usage"]["completion_tokens"]) == (11, 7)
