"""PySpur 0.1.18's AgentNode beside ours (`python -m bench.run --only agent`): the same 10-turn loop
against the same stub, through PySpur's own `/api/wf/{id}/run/`.

PySpur runs a tool node with a config built from the model's arguments (`BaseNode.call_as_tool`
validates the arguments as the node's config), so a Python tool runs the code the model sends; the
stub's scripted turns therefore send the tool's code as its argument.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from bench.pyspur import pyspur_server
from bench.stats import percentile

CODE = "return {'result': 2}"


def pyspur_agent_definition(iterations: int) -> dict[str, Any]:
    """input -> AgentNode (a PythonFuncNode child as its tool) -> output, as PySpur's editor saves it."""
    output = {"output": {"type": "string"}, "tool_calls": {"type": "array", "items": {"type": "string"}}}
    schema = {"type": "object", "properties": output, "required": ["output", "tool_calls"]}
    q_schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    return {
        "nodes": [
            {"id": "input_node", "title": "input_node", "node_type": "InputNode", "coordinates": {"x": 0, "y": 0},
             "config": {"output_schema": {"q": "string"}, "output_json_schema": json.dumps(q_schema)}},
            {"id": "agent", "title": "Agent", "node_type": "AgentNode", "coordinates": {"x": 300, "y": 0},
             "config": {"llm_info": {"model": "openai/gpt-4o-mini", "max_tokens": 32, "temperature": 0.7},
                        "system_message": "Use the tool.", "user_message": "{{input_node.q}}",
                        "max_iterations": iterations, "output_json_schema": json.dumps(schema),
                        "output_schema": {"output": "string", "tool_calls": "array"}}},
            {"id": "double", "title": "double", "node_type": "PythonFuncNode", "parent_id": "agent",
             "coordinates": {"x": 0, "y": 0}, "config": {"code": CODE, "output_schema": {"result": "integer"}}},
            {"id": "output_node", "title": "output_node", "node_type": "OutputNode", "coordinates": {"x": 600, "y": 0},
             "config": {"output_schema": {"answer": "string"}, "output_map": {"answer": "Agent.output"}}},
        ],
        "links": [{"source_id": "input_node", "target_id": "agent"}, {"source_id": "agent", "target_id": "output_node"}],
        "test_inputs": [],
        "spur_type": "workflow",
    }  # fmt: skip


def pyspur_turns(iterations: int) -> list[dict[str, Any]]:
    args = json.dumps({"code": CODE, "output_schema": {"result": "integer"}})

    def ask(i: int) -> dict[str, Any]:
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "double", "arguments": args}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    final = {"role": "assistant", "content": json.dumps({"output": "done", "tool_calls": []})}
    return [*(ask(i) for i in range(iterations - 1)), final]


async def bench_pyspur_agent(
    stub: str, iterations: int, stub_seconds: float, n_seq: int, warmup: int
) -> None:
    env = {"OPENAI_API_BASE": f"{stub}/v1", "OPENAI_API_KEY": "sk-bench"}
    async with pyspur_server(extra_env=env) as (base_url, _), httpx.AsyncClient(timeout=300) as client:
        api = f"{base_url}/api"
        body = {"name": "bench-agent", "description": "", "definition": pyspur_agent_definition(iterations)}
        resp = await client.post(f"{api}/wf/", json=body)
        resp.raise_for_status()
        wf = resp.json()["id"]
        await client.post(
            f"{stub}/_control", json={"latency": stub_seconds, "turns": pyspur_turns(iterations)}
        )
        per_iteration = []
        for i in range(warmup + n_seq):
            t0 = time.perf_counter()
            r = await client.post(
                f"{api}/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"q": f"q{i}"}}}
            )
            elapsed = time.perf_counter() - t0
            r.raise_for_status()
            assert r.json()["output_node"] == {"answer": "done"}, r.text[:500]
            if i >= warmup:
                per_iteration.append((elapsed - iterations * stub_seconds) * 1000 / iterations)
        print(
            f"[agent] PySpur 0.1.18, the same loop, per iteration, n={n_seq}: "
            f"p50 {percentile(per_iteration, 50):.1f} ms, p95 {percentile(per_iteration, 95):.1f} ms",
            flush=True,
        )
