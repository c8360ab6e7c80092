"""v1 through the ksapi client: create run -> start -> poll until COMPLETED, for the default graph,
beside the same graph through `POST /wf/{id}/run/`, against one fresh `make run` stack.

    python -m bench.run --only v1 [--n-seq 100] [--warmup 10]
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import ksapi
from ksapi import ApiClient, Configuration, FoldersApi, WorkflowDefinitionsApi, WorkflowRunsApi

from bench.ours import our_stack
from bench.stats import Measurement

POLL_SECONDS = 0.005


def _v1_sequence(base: str, key: str, n: int, warmup: int) -> tuple[str, Measurement]:
    """Runs in a thread: the ksapi client is synchronous."""
    client = ApiClient(Configuration(host=base, access_token=key))
    runs, defs, folders = WorkflowRunsApi(client), WorkflowDefinitionsApi(client), FoldersApi(client)
    root = folders.list_folders().items[0].path_part_id
    d = defs.create_workflow_definition(
        ksapi.CreateWorkflowDefinitionRequest(
            name=f"bench-v1-{uuid.uuid4().hex[:6]}", parent_path_part_id=root, approval_required=False
        )
    )

    def one() -> float:
        t0 = time.perf_counter()
        run = defs.create_workflow_run(d.id)
        state = runs.start_workflow_run(run.id).execution_state.value
        while state != "COMPLETED":
            if state == "FAILED":
                raise RuntimeError(f"run {run.id} failed")
            time.sleep(POLL_SECONDS)
            state = runs.get_workflow_run(run.id).execution_state.value
        return (time.perf_counter() - t0) * 1000

    for _ in range(warmup):
        one()
    start = time.perf_counter()
    latencies = [one() for _ in range(n)]
    wall = time.perf_counter() - start
    note = "ksapi: create run -> start -> poll GET until COMPLETED (default graph)"
    return str(d.id), Measurement("v1-ksapi", latencies, wall, n, 1, note)


async def _wf_sequence(base: str, key: str, workflow_id: str, n: int, warmup: int) -> Measurement:
    body = {"initial_inputs": {"input_node": {"input_1": "hello"}}}
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:

        async def one() -> float:
            t0 = time.perf_counter()
            resp = await http.post(f"/wf/{workflow_id}/run/", json=body)
            if (
                resp.status_code != 200
                or resp.json().get("input_node") != body["initial_inputs"]["input_node"]
            ):
                raise RuntimeError(f"POST /wf/{workflow_id}/run/ -> {resp.status_code}: {resp.text[:300]}")
            return (time.perf_counter() - t0) * 1000

        for _ in range(warmup):
            await one()
        start = time.perf_counter()
        latencies = [await one() for _ in range(n)]
        wall = time.perf_counter() - start
    return Measurement("v1-wf-run", latencies, wall, n, 1, "POST /wf/{id}/run/ on the same definition")


async def bench_v1(n_seq: int, warmup: int) -> list[Measurement]:
    async with our_stack() as (base, key):
        workflow_id, v1 = await asyncio.to_thread(_v1_sequence, base, key, n_seq, warmup)
        wf = await _wf_sequence(base, key, workflow_id, n_seq, warmup)
    return [v1, wf]
