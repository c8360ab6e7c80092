"""`python -m bench.run --only agent`: input -> AgentNode (one Python tool) -> output against the
OpenAI-compatible stub (tests/llm_stub.py, its own process) scripted to ask for the tool in 9 turns
and answer in the 10th, each turn after 100 ms.

Sequential `POST /wf/{id}/run/`: the run's time minus the stub's 10 x 100 ms, divided by the 10
iterations, is what the service adds per iteration (a model turn as an activity, the tool call as
its node kind's activity in the sandbox, their task records and the Temporal round trips).

PySpur 0.1.18's AgentNode runs the same loop against the same stub afterwards (bench/agent_pyspur.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from bench.agent_pyspur import bench_pyspur_agent
from bench.llm import stub_process
from bench.ours import our_stack
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
        env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_API_BASE": f"{stub}/v1"}
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
        await bench_pyspur_agent(stub, ITERATIONS, STUB_SECONDS, n_seq, warmup)
