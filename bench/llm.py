"""`python -m bench.run --only llm`: input -> SingleLLMCallNode -> output against an OpenAI-compatible
stub on loopback (tests/llm_stub.py) that answers after a fixed delay.

1. overhead: sequential `POST /wf/{id}/run/` with the stub answering after 200 ms; p50/p95 of the
   run minus the stub's delay is what the service adds (API, Temporal round trips, the activity,
   key lookup and decryption, the SDK), shown beside the same graph with a Python node instead;
2. cancel: a run cancelled while its call is in flight, until the provider sees the connection close;
3. concurrency: `--llm-conc` runs started at once with the stub answering after 2 s; runs/s, the
   most calls the stub saw in flight at once, and the peak RSS of the worker process; then the same
   with the stub answering after `--llm-hold` s (longer than starting them all takes), so every
   call waits at once: what one worker holds, not how fast runs are started.

Then PySpur 0.1.18 (installed with litellm into bench/.pyspur-venv by bench/pyspur.py) against the
same stub process, measured the same way (bench/llm_pyspur.py). The host's load average is printed
beside the figures: the machine is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.llm_phases import print_phases
from bench.ours import ROOT, our_stack
from bench.ports import free_port
from bench.stats import percentile

SCHEMA = '{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}'


def llm_definition(timeout_seconds: float | None = None) -> dict[str, Any]:
    """`timeout_seconds`: the node's time for one attempt, and for all of them plus 180 s (ours only;
    PySpur has no such fields)."""
    extra = (
        {}
        if timeout_seconds is None
        else {"timeout_seconds": timeout_seconds, "max_total_seconds": timeout_seconds + 180}
    )
    return {
        "nodes": [
            {"id": "input_node", "title": "input_node", "node_type": "InputNode",
             "config": {"output_schema": {"q": "string"}}},
            {"id": "llm", "title": "Ask", "node_type": "SingleLLMCallNode",
             "config": {"llm_info": {"model": "openai/gpt-4o-mini", "max_tokens": 32},
                        "system_message": "Answer briefly.", "user_message": "{{input_node.q}}",
                        "output_schema": {"answer": "string"}, "output_json_schema": SCHEMA, **extra}},
            {"id": "output_node", "title": "output_node", "node_type": "OutputNode",
             "config": {"output_map": {"answer": "Ask.answer"}}},
        ],
        "links": [{"source_id": "input_node", "target_id": "llm"}, {"source_id": "llm", "target_id": "output_node"}],
    }  # fmt: skip


PY_DEFINITION = {
    "nodes": [
        {"id": "input_node", "title": "input_node", "node_type": "InputNode", "config": {"output_schema": {"q": "string"}}},
        {"id": "py", "title": "Ask", "node_type": "PythonFuncNode",
         "config": {"code": "return {'answer': 'stub'}", "output_schema": {"answer": "string"}}},
        {"id": "output_node", "title": "output_node", "node_type": "OutputNode", "config": {"output_map": {"answer": "Ask.answer"}}},
    ],
    "links": [{"source_id": "input_node", "target_id": "py"}, {"source_id": "py", "target_id": "output_node"}],
}  # fmt: skip


@contextlib.contextmanager
def stub_process() -> Iterator[str]:
    """The stub in a process of its own (sharing the harness's GIL would add its waits to the figure)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.llm_stub", str(port)], cwd=ROOT)
    root = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{root}/_control").raise_for_status()
                break
            time.sleep(0.1)
        yield root
    finally:
        proc.terminate()
        proc.wait(10)


def _rss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cwd(proc: Path) -> Path | None:
    try:
        return (proc / "cwd").resolve(strict=True)
    except OSError:
        return None


def _worker_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            # Ours only: other checkouts on a shared machine run their own worker.py.
            if any(part.endswith(b"worker.py") for part in cmd) and _cwd(proc) == ROOT:
                pids.append(int(proc.name))
    return pids


async def _sequential(client: httpx.AsyncClient, url: str, n: int, warmup: int) -> list[float]:
    async def once(i: int) -> None:
        r = await client.post(url, json={"initial_inputs": {"input_node": {"q": f"q{i}"}}})
        r.raise_for_status()
        assert r.json()["output_node"] == {"answer": "stub"}, r.text

    for i in range(warmup):
        await once(-i)
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        await once(i)
        lat.append((time.perf_counter() - t0) * 1000)
    return lat


async def _cancel_latency(client: httpx.AsyncClient, base: str, wf: str, stub: str, n: int = 10) -> None:
    """Cancel a run while its call is in flight: time until the provider sees the connection close."""
    lat = []
    for i in range(n):
        await client.post(f"{stub}/_control", json={"latency": 60.0})
        run = (
            await client.post(
                f"{base}/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"q": f"c{i}"}}}
            )
        ).json()
        while (await client.get(f"{stub}/_control")).json()["requests"] < 1:
            await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        (await client.post(f"{base}/wf/cancel_workflow/{run['id']}/")).raise_for_status()
        while (await client.get(f"{stub}/_control")).json()["disconnected"] < 1:
            await asyncio.sleep(0.01)
        lat.append((time.perf_counter() - t0) * 1000)
    print(
        f"[llm] cancel -> provider connection closed, n={n}: p50 {percentile(lat, 50):.0f} ms, "
        f"max {max(lat):.0f} ms"
    )


async def bench_llm(n_seq: int, n_conc: int, warmup: int, hold: float = 120.0) -> None:
    with stub_process() as stub:
        temporal = f"127.0.0.1:{free_port()}"
        # The worker's own slot limits as configured: what one worker holds is part of the figure.
        env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_API_BASE": f"{stub}/v1", "TEMPORAL_ADDRESS": temporal}
        async with our_stack(**env) as (base, key), httpx.AsyncClient(timeout=600) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            ids = []
            for name, defn in (("bench-llm", llm_definition()), ("bench-py", PY_DEFINITION)):
                resp = await client.post(f"{base}/wf/", json={"name": name, "definition": defn})
                resp.raise_for_status()
                ids.append(resp.json()["id"])
            wf, py = ids
            await client.post(f"{stub}/_control", json={"latency": 0.2})
            llm = [x - 200 for x in await _sequential(client, f"{base}/wf/{wf}/run/", n_seq, warmup)]
            same = await _sequential(client, f"{base}/wf/{py}/run/", n_seq, warmup)
            print(
                f"[llm] run minus the provider's 200 ms, n={n_seq}: p50 {percentile(llm, 50):.1f} ms, "
                f"p95 {percentile(llm, 95):.1f} ms; the same graph with a Python node instead: "
                f"p50 {percentile(same, 50):.1f} ms, p95 {percentile(same, 95):.1f} ms"
            )
            await print_phases(temporal, wf, "the LLM graph")
            await print_phases(temporal, py, "the Python graph")
            await _cancel_latency(client, base, wf, stub)
            print(f"[llm] load average: {_load()}")
            if n_conc > 0:
                await _concurrent(client, base, wf, stub, n_conc, 2.0)
                if hold > 0:
                    # An attempt may take longer than the provider's answer (default: 120 s, 300 s in all).
                    defn = llm_definition(timeout_seconds=hold + 120)
                    resp = await client.post(
                        f"{base}/wf/", json={"name": "bench-llm-hold", "definition": defn}
                    )
                    resp.raise_for_status()
                    await _concurrent(client, base, resp.json()["id"], stub, n_conc, hold)
        await _pyspur_beside(stub, n_seq, n_conc, warmup)


async def _pyspur_beside(stub: str, n_seq: int, n_conc: int, warmup: int) -> None:
    from bench.llm_pyspur import bench_pyspur_llm

    print(f"[llm] load average before PySpur: {_load()}")
    try:
        await bench_pyspur_llm(stub, n_seq, n_conc, warmup)
    except Exception as exc:  # keep our figures; say why PySpur's are missing
        print(f"[llm] PySpur 0.1.18 not measured: {type(exc).__name__}: {str(exc)[:500]}")
    print(f"[llm] load average after PySpur: {_load()}")


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _concurrent(
    client: httpx.AsyncClient, base: str, wf: str, stub: str, n_conc: int, latency: float
) -> None:
    """`n_conc` runs started at once; the stub answering after `latency` s. With a short latency the
    figure is the pipeline's (starts, workflow tasks, completions); with a latency longer than it
    takes to start them all, every call is waiting at once, which is what one worker holds."""
    await client.post(f"{stub}/_control", json={"latency": latency})
    pids = _worker_pids()
    peak_rss = {pid: _rss_kb(pid) for pid in pids}
    t0 = time.perf_counter()
    started = await asyncio.gather(*(
        client.post(f"{base}/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"q": str(uuid.uuid4())}}})
        for _ in range(n_conc)
    ))  # fmt: skip
    starts_took = time.perf_counter() - t0
    refused = [f"HTTP {r.status_code} {r.text[:200]}" for r in started if r.status_code != 200]
    pending = {r.json()["id"] for r in started if r.status_code == 200}
    failed: list[str] = []
    pages = (n_conc + 99) // 100 + 1
    while pending:
        for pid in pids:
            peak_rss[pid] = max(peak_rss[pid], _rss_kb(pid))
        # A few list pages per poll: the API process hosts a worker too, and must not be starved.
        for page in range(1, pages + 1):
            listed = await client.get(f"{base}/wf/{wf}/runs/", params={"page": page, "page_size": 100})
            for body in listed.json():
                if body["id"] in pending and body["status"] in ("COMPLETED", "FAILED", "CANCELED"):
                    if body["status"] != "COMPLETED":
                        failed.append(str(body.get("error"))[:200])
                    pending.discard(body["id"])
        await asyncio.sleep(0.5)
    wall = time.perf_counter() - t0
    stats = (await client.get(f"{stub}/_control")).json()
    rss = max(peak_rss.values(), default=0) / 1024
    print(
        f"[llm] {n_conc} runs started at once, provider {latency:g} s: "
        f"{(n_conc - len(refused) - len(failed)) / wall:.1f} runs/s "
        f"(wall {wall:.1f} s, all started in {starts_took:.1f} s), {n_conc - len(refused) - len(failed)} "
        f"completed, {len(failed)} failed{' (' + failed[0] + ')' if failed else ''}, {len(refused)} starts "
        f"refused{' (' + refused[0] + ')' if refused else ''}; the provider got "
        f"{stats['requests']} calls, at most {stats['peak']} in flight; peak worker RSS {rss:.0f} MB; "
        f"load average {_load()}"
    )
