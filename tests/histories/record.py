"""Record histories of representative runs for the replay test (run against `make run`).

    .venv/bin/python -m tests.histories.record [--api http://127.0.0.1:8000] [--temporal 127.0.0.1:7233]

Re-record after an intended change to the interpreter only together with a `workflow.patched()` gate
for runs already in flight; the committed files are what older in-flight runs look like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

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


async def main(api: str, temporal: str, key: str) -> None:
    client = await Client.connect(temporal)
    async with httpx.AsyncClient(
        base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        for name, (defn, inputs) in CASES.items():
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
    a = p.parse_args()
    asyncio.run(main(a.api, a.temporal, Path(a.key_file).read_text().strip()))
