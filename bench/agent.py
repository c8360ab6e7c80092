"""`python -m bench.run --only agent`: input -> AgentNode (one Python tool) -> output against the
OpenAI-compatible stub (tests/llm_stub.py, its own process) scripted to ask for the tool in 9 turns
and answer in the 10th, each turn after 100 ms.

Sequential `POST /wf/{id}/run/`: the run's time minus the stub's 10 x 100 ms, divided by the 10
iterations, is what the service adds per iteration (a model turn as an activity, the tool call as
its node kind's activity in the sandbox, their task records and the Temporal round trips).

PySpur 0.1.18's AgentNode runs the same loop against the same stub afterwards (bench/agent_pyspur.py).

Where an iteration's time goes is read from the last run's Temporal history (`breakdown`): the model
turn's activity beyond the stub's 100 ms, the hand-off from its completion to the workflow task
that reads it, that workflow task (the tool's local activity in the sandbox, and the rest).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from typing import Any

import httpx
from temporalio.client import Client

from bench.agent_pyspur import bench_pyspur_agent
from bench.llm import stub_process
from bench.ours import our_stack
from bench.ports import free_port
from bench.stats import percentile

ITERATIONS = 10
STUB_SECONDS = 0.1


def agent_definition() -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "input_node", "title": "input_node", "node_type": "InputNode",
             "config": {"output_schema": {"q": "string"}}},
            {"id": "agent", "title": "Agent", "node_type": "AgentNode",
             "config": {"llm_info": {"model": "openai/gpt-4o-mini", "max_tokens": 32},
                        "system_message": "Use the tool.", "user_message": "{{input_node.q}}",
                        "max_iterations": ITERATIONS}},
            {"id": "double", "title": "double", "node_type": "PythonFuncNode", "parent_id": "agent",
             "config": {"code": "return {'result': input_model.n * 2}", "output_schema": {"result": "integer"},
                        "input_schema": {"n": "integer"}}},
            {"id": "output_node", "title": "output_node", "node_type": "OutputNode",
             "config": {"output_map": {"answer": "Agent.output"}}},
        ],
        "links": [{"source_id": "input_node", "target_id": "agent"}, {"source_id": "agent", "target_id": "output_node"}],
    }  # fmt: skip


def turns() -> list[dict[str, Any]]:
    def call(i: int) -> dict[str, Any]:
        args = json.dumps({"n": i})
        return {"id": f"call_{i}", "type": "function", "function": {"name": "double", "arguments": args}}

    asks = [{"role": "assistant", "content": None, "tool_calls": [call(i)]} for i in range(ITERATIONS - 1)]
    return [*asks, {"role": "assistant", "content": json.dumps({"output": "done"})}]


async def bench_agent(n_seq: int, warmup: int) -> None:
    with stub_process() as stub:
        temporal = f"127.0.0.1:{free_port()}"
        env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_API_BASE": f"{stub}/v1", "TEMPORAL_ADDRESS": temporal}
        async with our_stack(**env) as (base, key), httpx.AsyncClient(timeout=600) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            resp = await client.post(
                f"{base}/wf/", json={"name": "bench-agent", "definition": agent_definition()}
            )
            resp.raise_for_status()
            wf = resp.json()["id"]
            await client.post(f"{stub}/_control", json={"latency": STUB_SECONDS, "turns": turns()})
            per_iteration = []
            for i in range(warmup + n_seq):
                t0 = time.perf_counter()
                r = await client.post(
                    f"{base}/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"q": f"q{i}"}}}
                )
                elapsed = time.perf_counter() - t0
                r.raise_for_status()
                assert r.json()["output_node"] == {"answer": "done"}, r.text
                if i >= warmup:
                    per_iteration.append((elapsed - ITERATIONS * STUB_SECONDS) * 1000 / ITERATIONS)
            print(
                f"[agent] {ITERATIONS}-iteration loop (9 tool calls of a Python tool), run minus the stub's "
                f"{ITERATIONS} x {STUB_SECONDS * 1000:.0f} ms, per iteration, n={n_seq}: "
                f"p50 {percentile(per_iteration, 50):.1f} ms, p95 {percentile(per_iteration, 95):.1f} ms"
            )
            runs = (await client.get(f"{base}/wf/{wf}/runs/")).json()
            await print_breakdown(temporal, runs[0]["id"], elapsed)
        await bench_pyspur_agent(stub, ITERATIONS, STUB_SECONDS, n_seq, warmup)


def _at(event: dict[str, Any]) -> float:
    return float(datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).timestamp())


def _seconds(stamp: dict[str, Any]) -> float:
    return float(stamp["seconds"]) + float(stamp.get("nanos", 0)) / 1e9


def breakdown(events: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per model turn, in ms: its activity beyond the stub's answer, the hand-off to the next workflow
    task (completion to that task's start), that task's time, and the local activities (the tool)
    it ran; from the Temporal history's event times."""
    parts: dict[str, list[float]] = {"turn activity - stub": [], "hand-off": [], "workflow task": []}
    parts["local activities (tool)"] = []
    scheduled: float | None = None
    completed: float | None = None
    task_start: float | None = None
    for event in events:
        kind = event["eventType"].removeprefix("EVENT_TYPE_")
        if kind == "ACTIVITY_TASK_SCHEDULED":
            scheduled = _at(event)
        elif kind == "ACTIVITY_TASK_COMPLETED" and scheduled is not None:
            completed = _at(event)
            parts["turn activity - stub"].append((completed - scheduled - STUB_SECONDS) * 1000)
        elif kind == "WORKFLOW_TASK_STARTED" and completed is not None:
            task_start = _at(event)
            parts["hand-off"].append((task_start - completed) * 1000)
            completed = None
        elif kind == "WORKFLOW_TASK_COMPLETED" and task_start is not None:
            parts["workflow task"].append((_at(event) - task_start) * 1000)
            task_start = None
        elif kind == "MARKER_RECORDED" and parts["workflow task"]:
            payload = event["markerRecordedEventAttributes"]["details"]["data"]["payloads"][0]["data"]
            data = json.loads(base64.b64decode(payload))
            if data.get("activity_type") != "finalize_run":
                took = _seconds(data["complete_time"]) - _seconds(data["original_schedule_time"])
                parts["local activities (tool)"].append(took * 1000)
    return parts


async def print_breakdown(temporal: str, run_id: str, elapsed: float) -> None:
    """`elapsed`: the last run's time as its client saw it (the API's part is what the history
    does not hold)."""
    from workflows.search_attributes import temporal_workflow_id

    client = await Client.connect(temporal)
    history = await client.get_workflow_handle(temporal_workflow_id(run_id)).fetch_history()
    events = json.loads(history.to_json())["events"]
    tasks = sum(1 for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED")
    print(f"[agent] last run: {len(events)} events, {tasks} workflow tasks for {ITERATIONS} turns")
    first = next(e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    last = [e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"][-1]
    span = _at(events[-1]) - _at(events[0])
    print(
        f"[agent]   once per run: start to the first turn {(_at(first) - _at(events[0])) * 1000:.1f} ms, "
        f"last turn to the end {(_at(events[-1]) - _at(last)) * 1000:.1f} ms, "
        f"the API around the workflow {(elapsed - span) * 1000:.1f} ms"
    )
    for name, values in breakdown(events).items():
        if values:
            print(
                f"[agent]   {name}: n={len(values)} mean {sum(values) / len(values):.1f} ms, "
                f"p50 {percentile(values, 50):.1f} ms"
            )
