"""Record histories of representative runs for the replay test (run against `make run`).

    .venv/bin/python -m tests.histories.record [--api http://127.0.0.1:8000] [--temporal 127.0.0.1:7233]

Re-record after an intended change to the interpreter only together with a `workflow.patched()` gate
for runs already in flight; the committed files are what older in-flight runs look like.
Histories of runs left in flight (paused_open, batch_midway_*) are written by the cross-version test:
`RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/e2e/test_upgrade.py`.
Histories of runs that call a model need the provider stub, so their e2e tests write them the same
way: tests/e2e/test_llm_history.py (llm_nodes) and tests/e2e/test_agent_history.py
(agent_tool_and_approval: a tool turn and an approved tool call).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowFailureError

from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node
from workflows.search_attributes import temporal_workflow_id

HERE = Path(__file__).parent
# Cases whose run pauses: answered with this decision before the history is taken.
DECISIONS: dict[str, dict[str, Any]] = {
    "paused_then_approved": {"inputs": {"ok": True}, "user_id": "recorder", "action": "APPROVE"},
}


CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "completed_python": (double_graph(), {"x": 21}),
    "failed_python": (double_graph("raise ValueError('boom')"), {"x": 1}),
    # Longer than the fast path: a timed-out local activity, then the heartbeating activity.
    "slow_python": (double_graph("import time\ntime.sleep(1.5)\nreturn {'y': 2}"), {"x": 1}),
    "paused_then_approved": (
        definition(
            [
                input_node(),
                node("approve", "HumanInterventionNode", message="Check it"),
                python_node("side", "return {'s': 1}", {"s": "integer"}),
                python_node("after", "return {'a': 1}", {"a": "integer"}),
                output_node({"a": "after.a"}),
            ],
            [
                link("input_node", "approve"),
                link("input_node", "side"),
                link("approve", "after"),
                link("after", "output_node"),
            ],
        ),
        {"x": 1},
    ),
    "router_branches": (
        definition(
            [
                input_node(),
                node(
                    "router",
                    "RouterNode",
                    route_map={
                        "big": {
                            "conditions": [
                                {"variable": "input_node.x", "operator": "greater_than", "value": 10}
                            ]
                        },
                        "small": {
                            "conditions": [{"variable": "input_node.x", "operator": "less_than", "value": 11}]
                        },
                    },
                ),
                python_node("a", "return {'v': 1}", {"v": "integer"}),
                python_node("b", "return {'v': 2}", {"v": "integer"}),
                node("c", "CoalesceNode", preferences=["a", "b"]),
                output_node({"v": "c.v"}),
            ],
            [
                link("input_node", "router"),
                link("router", "a", "big"),
                link("router", "b", "small"),
                link("a", "c"),
                link("b", "c"),
                link("c", "output_node"),
            ],
        ),
        {"x": 3},
    ),
}


def _loop(iterations: int) -> dict[str, Any]:
    body = "return {'count': input_model.loop_in.count + 1}"
    return definition(
        [
            input_node(),
            node("loop", "ForLoopNode", num_iterations=iterations, input_map={"count": "input_node.x"}),
            {**input_node({"count": "integer"}, node_id="loop_in"), "parent_id": "loop"},
            {**python_node("step", body, {"count": "integer"}), "parent_id": "loop"},
            {**output_node({"count": "step.count"}, node_id="loop_out"), "parent_id": "loop"},
            output_node({"count": "loop.count"}),
        ],
        [
            link("input_node", "loop"),
            link("loop_in", "step"),
            link("step", "loop_out"),
            link("loop", "output_node"),
        ],
    )


CASES["loop_three_iterations"] = (_loop(3), {"x": 1})


async def _record(client: Client, name: str, workflow_id: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HERE / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
    print("recorded", name)


async def _create(http: httpx.AsyncClient, name: str, defn: dict[str, Any]) -> str:
    wf = (
        await http.post("/wf/", json={"name": f"rec-{name}-{uuid.uuid4().hex[:6]}", "definition": defn})
    ).json()
    return str(wf["id"])


async def _dataset(http: httpx.AsyncClient, rows: str) -> dict[str, Any]:
    """Upload `rows` (CSV text) as a dataset; its JSON as `POST /ds/` answers it."""
    resp = await http.post(
        "/ds/", params={"name": f"rec-{uuid.uuid4().hex[:6]}"}, files={"file": ("rows.csv", rows.encode())}
    )
    body: dict[str, Any] = resp.json()
    return body


async def record_composites(client: Client, http: httpx.AsyncClient) -> None:
    """A run with a SubworkflowNode (parent and child histories) and a batch (parent and chunk)."""
    child = await _create(http, "child", double_graph())
    parent_defn = definition(
        [
            input_node(),
            node("sub", "SubworkflowNode", workflow_id=child, input_map={"x": "input_node.x"}),
            output_node({"y": "sub.y"}),
        ],
        [link("input_node", "sub"), link("sub", "output_node")],
    )
    parent = await _create(http, "subworkflow", parent_defn)
    await http.post(f"/wf/{parent}/run/", json={"initial_inputs": {"input_node": {"x": 4}}})
    run_id = (await http.get(f"/wf/{parent}/runs/")).json()[0]["id"]
    await _record(client, "subworkflow_parent", temporal_workflow_id(run_id))
    child_run = (await http.get(f"/run/{run_id}/children/")).json()[0]["id"]
    await _record(client, "subworkflow_child", temporal_workflow_id(child_run))

    rows = "x\n" + "".join(f"{i}\n" for i in range(6))
    dataset = await _dataset(http, rows)
    batch_wf = await _create(http, "batch", double_graph())
    batch = (
        await http.post(
            f"/wf/{batch_wf}/start_batch_run/", json={"dataset_id": dataset["id"], "mini_batch_size": 3}
        )
    ).json()
    handle = client.get_workflow_handle(temporal_workflow_id(batch["id"]))
    await handle.result()
    await _record(client, "batch_parent", handle.id)
    await _record(client, "batch_chunk", f"{handle.id}/rows-0")


async def record_batch_json_text(client: Client, http: httpx.AsyncClient) -> None:
    """A batch whose rows carry JSON text for a list field, converted since the `batch-row-json-text`
    patch (its chunk history holds the patch marker)."""
    code = "return {'y': sum(input_model.input_node.xs)}"
    defn = definition(
        [
            input_node({"xs": "array"}),
            python_node("py1", code, {"y": "integer"}),
            output_node({"y": "py1.y"}),
        ],
        [link("input_node", "py1"), link("py1", "output_node")],
    )
    rows = 'xs\n"[1, 2]"\n[]\n"[3]"\n'
    dataset = await _dataset(http, rows)
    batch_wf = await _create(http, "batch-json", defn)
    batch = (
        await http.post(
            f"/wf/{batch_wf}/start_batch_run/", json={"dataset_id": dataset["id"], "mini_batch_size": 2}
        )
    ).json()
    handle = client.get_workflow_handle(temporal_workflow_id(batch["id"]))
    await handle.result()
    await _record(client, "batch_chunk_json_text", f"{handle.id}/rows-0")


async def record_batch_pipelined(client: Client, http: httpx.AsyncClient) -> None:
    """A chunk on the `batch-pipeline` path: 250 rows, 10 at a time, so pages load while rows run and
    rows are written (100 at a time) while the next rows run; every fifth row fails."""
    rows = "x\n" + "".join(f"{i}\n" for i in range(250))
    dataset = await _dataset(http, rows)
    code = "x = input_model.input_node.x\nif x % 5 == 4:\n    raise ValueError(x)\nreturn {'y': 2 * x}"
    batch_wf = await _create(http, "batch-pipe", double_graph(code))
    batch = (
        await http.post(
            f"/wf/{batch_wf}/start_batch_run/", json={"dataset_id": dataset["id"], "mini_batch_size": 10}
        )
    ).json()
    handle = client.get_workflow_handle(temporal_workflow_id(batch["id"]))
    with contextlib.suppress(WorkflowFailureError):  # the failed rows fail the parent
        await handle.result()
    await _record(client, "batch_chunk_pipelined", f"{handle.id}/rows-0")


async def main(api: str, temporal: str, key: str, only: set[str] | None) -> None:
    client = await Client.connect(temporal)
    async with httpx.AsyncClient(
        base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        if only is None or "composites" in only:
            await record_composites(client, http)
        if only is None or "batch_json_text" in only:
            await record_batch_json_text(client, http)
        if only is None or "batch_pipelined" in only:
            await record_batch_pipelined(client, http)
        for name, (defn, inputs) in CASES.items():
            if only is not None and name not in only:
                continue
            wf = (
                await http.post(
                    "/wf/", json={"name": f"rec-{name}-{uuid.uuid4().hex[:6]}", "definition": defn}
                )
            ).json()
            await http.post(f"/wf/{wf['id']}/run/", json={"initial_inputs": {"input_node": inputs}})
            run_id = (await http.get(f"/wf/{wf['id']}/runs/")).json()[0]["id"]
            if name in DECISIONS:
                await http.post(f"/wf/process_pause_action/{run_id}/", json=DECISIONS[name])
                await client.get_workflow_handle(temporal_workflow_id(run_id)).result()
            history = await client.get_workflow_handle(temporal_workflow_id(run_id)).fetch_history()
            (HERE / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
            print("recorded", name)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--api", default="http://127.0.0.1:8000")
    p.add_argument("--temporal", default="127.0.0.1:7233")
    p.add_argument("--key-file", default=".data/admin-api-key")
    # Record only these cases (comma separated; "composites" = subworkflow and batch): histories
    # already committed stand for runs recorded by older code and must stay as they are.
    p.add_argument("--only", default=None)
    a = p.parse_args()
    only = set(a.only.split(",")) if a.only else None
    asyncio.run(main(a.api, a.temporal, Path(a.key_file).read_text().strip(), only))
