"""PySpur 0.1.18 beside ours in `python -m bench.run --only llm`: the same input -> SingleLLMCallNode
-> output graph, its OPENAI_API_BASE/OPENAI_API_KEY pointed at the same stub (litellm's path, as
PySpur runs it), measured the same way: sequential runs with the stub at 200 ms (overhead = run minus
200 ms) and `n_conc` runs started at once with the stub at 2 s (runs/s, the stub's peak calls in
flight, the peak RSS of PySpur's server processes)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.llm import SCHEMA, llm_definition
from bench.pyspur import pyspur_server
from bench.stats import percentile


def pyspur_llm_definition() -> dict[str, Any]:
    """Ours, with what PySpur's own editor would save beside it (input JSON schema, coordinates)."""
    defn = llm_definition()
    for i, node in enumerate(defn["nodes"]):
        node["coordinates"] = {"x": 300.0 * i, "y": 0.0}
    defn["nodes"][0]["config"]["output_json_schema"] = json.dumps(
        {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    )
    defn["nodes"][2]["config"]["output_schema"] = {"answer": "string"}
    defn["nodes"][1]["config"]["output_json_schema"] = SCHEMA
    return {**defn, "test_inputs": [], "spur_type": "workflow"}


def _server_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b".pyspur-venv" in cmd and b"serve" in cmd:
                pids.append(int(proc.name))
    return pids


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def bench_pyspur_llm(stub: str, n_seq: int, n_conc: int, warmup: int, limit: float = 300.0) -> None:
    """`limit`: seconds the burst may take; past it, what PySpur reached by then is reported."""
    env = {"OPENAI_API_BASE": f"{stub}/v1", "OPENAI_API_KEY": "sk-bench"}
    # A connection per start (httpx's default pool of 100 queued the burst until PoolTimeout at load 50).
    limits = httpx.Limits(max_connections=max(100, n_conc))
    timeout = httpx.Timeout(900, pool=None)
    async with (
        pyspur_server(extra_env=env) as (base_url, _),
        httpx.AsyncClient(timeout=timeout, limits=limits) as client,
    ):
        api = f"{base_url}/api"
        resp = await client.post(
            f"{api}/wf/", json={"name": "bench-llm", "description": "", "definition": pyspur_llm_definition()}
        )
        resp.raise_for_status()
        wf = resp.json()["id"]
        await client.post(f"{stub}/_control", json={"latency": 0.2})

        async def once(i: int) -> None:
            r = await client.post(
                f"{api}/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"q": f"q{i}"}}}
            )
            r.raise_for_status()
            assert r.json()["output_node"] == {"answer": "stub"}, r.text[:500]

        for i in range(warmup):
            await once(-i - 1)
        lat = []
        for i in range(n_seq):
            t0 = time.perf_counter()
            await once(i)
            lat.append((time.perf_counter() - t0) * 1000 - 200)
        print(
            f"[llm] PySpur 0.1.18 run minus the provider's 200 ms, n={n_seq}: p50 {percentile(lat, 50):.1f} ms, "
            f"p95 {percentile(lat, 95):.1f} ms"
        )
        if n_conc <= 0:
            return
        await client.post(f"{stub}/_control", json={"latency": 2.0})
        pids = _server_pids()
        peak_rss = _rss_mb(pids)
        t0 = time.perf_counter()
        starts = [
            asyncio.create_task(
                client.post(f"{api}/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"q": str(uuid.uuid4())}}})
            )
            for _ in range(n_conc)
        ]  # fmt: skip
        answered, unanswered = await asyncio.wait(starts, timeout=limit)
        for task in unanswered:
            task.cancel()
        ok = [r for t in answered if t.exception() is None and (r := t.result()).status_code == 200]
        refused = len(answered) - len(ok)
        pending = {r.json()["id"] for r in ok}
        failed = 0
        deadline = t0 + limit
        while pending and time.perf_counter() < deadline:
            peak_rss = max(peak_rss, _rss_mb(pids))
            for run_id in list(pending)[:200]:
                status = await client.get(f"{api}/run/{run_id}/status/")
                if status.status_code == 200 and status.json()["status"] in (
                    "COMPLETED",
                    "FAILED",
                    "CANCELED",
                ):
                    failed += status.json()["status"] != "COMPLETED"
                    pending.discard(run_id)
            await asyncio.sleep(0.5)
        wall = time.perf_counter() - t0
        stats = (await client.get(f"{stub}/_control")).json()
        done = len(ok) - len(pending) - failed
        reached = (
            f"{done / wall:.1f} runs/s (wall {wall:.1f} s)"
            if not pending and not unanswered
            else f"did not finish in {limit:g} s: {done} completed by then, {len(unanswered)} starts "
            f"unanswered, {len(pending)} started and unfinished"
        )
        print(
            f"[llm] PySpur 0.1.18: {n_conc} runs started at once, provider 2 s: {reached}; {failed} failed, "
            f"{refused} refused at start; the provider got {stats['requests']} calls, at most "
            f"{stats['peak']} in flight; peak server RSS {peak_rss:.0f} MB"
        )
