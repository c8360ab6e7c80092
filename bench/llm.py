"""`python -m bench.run --only llm`: input -> SingleLLMCallNode -> output against an OpenAI-compatible
stub on loopback (tests/llm_stub.py) that answers after a fixed delay.

1. overhead: sequential `POST /wf/{id}/run/` with the stub answering after 200 ms; p50/p95 of the
   run minus the stub's delay is what the service adds (API, Temporal round trips, the activity,
   key lookup and decryption, the SDK);
2. concurrency: `--llm-conc` runs started at once with the stub answering after 2 s; runs/s, the
   most calls the stub saw in flight at once, and the peak RSS of the worker process.

PySpur 0.1.18 is not measured here: its LLM path needs litellm's model map and its own venv
(bench/pyspur.py), which this figure does not install.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.ours import our_stack
from bench.stats import percentile
from tests.llm_stub import LlmStub

SCHEMA = '{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}'


def llm_definition() -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "input_node", "title": "input_node", "node_type": "InputNode",
             "config": {"output_schema": {"q": "string"}}},
            {"id": "llm", "title": "Ask", "node_type": "SingleLLMCallNode",
             "config": {"llm_info": {"model": "openai/gpt-4o-mini", "max_tokens": 32},
                        "system_message": "Answer briefly.", "user_message": "{{input_node.q}}",
                        "output_schema": {"answer": "string"}, "output_json_schema": SCHEMA}},
            {"id": "output_node", "title": "output_node", "node_type": "OutputNode",
             "config": {"output_map": {"answer": "Ask.answer"}}},
        ],
        "links": [{"source_id": "input_node", "target_id": "llm"}, {"source_id": "llm", "target_id": "output_node"}],
    }  # fmt: skip


class CountingStub(LlmStub):
    """The stub, also counting the calls it holds at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0

    async def _chat(self, request: Any) -> Any:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super()._chat(request)
        finally:
            self.in_flight -= 1


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _worker_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(part.endswith(b"worker.py") for part in cmd):
                pids.append(int(proc.name))
    return pids


async def bench_llm(n_seq: int, n_conc: int, warmup: int) -> None:
    stub = CountingStub()
    with stub.running():
        env = {
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_API_BASE": stub.base_url,
            "WORKER_MAX_CONCURRENT_ACTIVITIES": str(max(64, n_conc)),
        }
        async with our_stack(**env) as (base, key), httpx.AsyncClient(timeout=600) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            resp = await client.post(
                f"{base}/wf/", json={"name": "bench-llm", "definition": llm_definition()}
            )
            resp.raise_for_status()
            wf = resp.json()["id"]

            async def run_once(i: int) -> None:
                r = await client.post(
                    f"{base}/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"q": f"q{i}"}}}
                )
                r.raise_for_status()
                assert r.json()["output_node"] == {"answer": "stub"}, r.text

            stub.latency = 0.2
            for i in range(warmup):
                await run_once(-i)
            lat = []
            for i in range(n_seq):
                t0 = time.perf_counter()
                await run_once(i)
                lat.append((time.perf_counter() - t0) * 1000 - 200)
            p50, p95 = percentile(lat, 50), percentile(lat, 95)
            print(f"[llm] overhead over a 200 ms provider, n={n_seq}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")

            if n_conc <= 0:
                return
            stub.latency, stub.peak = 2.0, 0
            pids = _worker_pids()
            peak_rss = {pid: _rss_kb(pid) for pid in pids}
            t0 = time.perf_counter()
            ids = await asyncio.gather(*(
                client.post(f"{base}/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"q": str(uuid.uuid4())}}})
                for _ in range(n_conc)
            ))  # fmt: skip
            run_ids = [r.json()["id"] for r in ids]
            pending = set(run_ids)
            while pending:
                for pid in pids:
                    peak_rss[pid] = max(peak_rss[pid], _rss_kb(pid))
                done = await asyncio.gather(
                    *(client.get(f"{base}/run/{rid}/") for rid in list(pending)[:200])
                )
                for r in done:
                    body = r.json()
                    if body["status"] in ("COMPLETED", "FAILED", "CANCELED"):
                        assert body["status"] == "COMPLETED", body.get("error")
                        pending.discard(body["id"])
                await asyncio.sleep(0.2)
            wall = time.perf_counter() - t0
            rss = max(peak_rss.values(), default=0) / 1024
            print(
                f"[llm] {n_conc} runs started at once, provider 2 s: {n_conc / wall:.1f} runs/s "
                f"(wall {wall:.1f} s), peak calls in flight {stub.peak}, peak worker RSS {rss:.0f} MB"
            )
