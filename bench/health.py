"""`python -m bench.health`: how long `/health` waits while one large or hostile request is handled.

A probe asks `/health` every 10 ms while a request of each kind below runs, alone, against a fresh
`make run` stack, and for 1.5 s after its answer (a started run goes on); it prints the request's own
time and answer and the probe's worst and p95 wait. `--env NAME=VALUE` sets a setting of the stack.
Issue 14's aim: `/health` within 100 ms under any of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.definitions import workflow_definition
from bench.ours import our_stack
from bench.stats import percentile

PROBE_EVERY_S = 0.01
TAIL_S = 1.5


def chain(n: int) -> dict[str, Any]:
    """input -> n Python nodes in a line -> output: a large valid graph (~250 bytes per node)."""
    base = workflow_definition()
    inp, py, out = base["nodes"]
    nodes = [inp]
    links = []
    prev = "input_node"
    for i in range(n):
        node = {**py, "id": f"p{i}", "title": f"p{i}", "coordinates": {"x": 300.0 * (i + 1), "y": 0.0}}
        nodes.append(node)
        links.append({"source_id": prev, "target_id": node["id"]})
        prev = node["id"]
    nodes.append({**out, "config": {**out["config"], "output_map": {"y": f"{prev}.y"}}})
    links.append({"source_id": prev, "target_id": "output_node"})
    return {**base, "nodes": nodes, "links": links}


def _api_pid(base: str) -> int:
    """The uvicorn process serving `base` (the stack's API)."""
    port = base.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if b"uvicorn" in b" ".join(argv) and port.encode() in argv:
                    return int(proc.name)
    raise LookupError(f"no API process on port {port}")


def _cpu_ms(pid: int) -> tuple[float, float]:
    """CPU time the process has used so far: its main thread's, and all its threads'."""
    main, total = 0.0, 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            ns = int((task / "schedstat").read_text().split()[0]) / 1e6
            total += ns
            main += ns if task.name == str(pid) else 0.0
    return main, total


def probe_main(base: str, pid: int) -> None:
    """The probe process: GET /health every 10 ms until a line arrives on stdin, then print each wait
    with the API's CPU time (main thread, all threads) during it. Says "ready" once its first answer
    came (a loaded machine may take seconds to start it)."""
    waits: list[tuple[float, float, float]] = []
    stop = threading.Event()

    def until_told() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=until_told, daemon=True).start()
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            main0, all0 = _cpu_ms(pid)
            t0 = time.perf_counter()
            client.get("/health")
            wait = (time.perf_counter() - t0) * 1000
            main1, all1 = _cpu_ms(pid)
            waits.append((wait, main1 - main0, all1 - all0))
            if len(waits) == 1:
                print("ready", flush=True)
            time.sleep(PROBE_EVERY_S)
    print(json.dumps(waits[1:]), flush=True)  # the first: a new connection, and before the request


async def _one(base: str, key: str, label: str, send: Callable[[httpx.AsyncClient], Awaitable[int]]) -> None:
    # The probe is a process of its own, so the wait measured is the API's, not this process's (its loop
    # and GIL are busy sending the large body).
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.health", "--probe", base, "--api-pid", str(_api_pid(base)),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert probe.stdin is not None and probe.stdout is not None
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        await probe.stdout.readline()  # "ready"
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        status = await send(client)
        took = (time.perf_counter() - t0) * 1000
        # A started run goes on after the answer (in the API's embedded worker if it took it): probed too.
        await asyncio.sleep(TAIL_S)
    out, _ = await probe.communicate(b"stop\n")
    probes: list[list[float]] = json.loads(out) or [[float("nan")] * 3]
    waits = [p[0] for p in probes]
    print(
        f"{label:<38} {status:>4} {took:>9.0f} {max(waits):>9.1f} {percentile(waits, 95):>9.1f} "
        f"{max(p[1] for p in probes):>9.1f} {max(p[2] for p in probes):>9.1f} {len(waits):>6}",
        flush=True,
    )


async def bench_health(nodes: int, env: dict[str, str]) -> None:
    async with our_stack(**env) as (base, key):
        headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as c:
            small = (await c.post("/wf/", json={"name": "h", "definition": workflow_definition()})).json()[
                "id"
            ]
        big_graph = json.dumps({"name": "chain", "definition": chain(nodes)}).encode()
        rows = [{"a": i, "b": [i, str(i)]} for i in range(50_000)]
        big_inputs = json.dumps({"initial_inputs": {"input_node": {"x": 1, "rows": rows}}}).encode()
        deep = b'{"initial_inputs": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001
        huge = b'{"name": "' + b"x" * (50 * 1024 * 1024) + b'"}'

        def post(path: str, body: bytes) -> Callable[[httpx.AsyncClient], Awaitable[int]]:
            async def send(client: httpx.AsyncClient) -> int:
                resp = await client.post(path, content=body, headers={"content-type": "application/json"})
                return resp.status_code

            return send

        # cpu main / cpu all: the most CPU time the API's main thread (its event loop) / all its threads
        # used during one probe's wait; unlike the waits, about the same on a loaded machine.
        print(
            f"{'request (one at a time)':<38} {'code':>4} {'took ms':>9} {'max ms':>9} {'p95 ms':>9} "
            f"{'cpu main':>9} {'cpu all':>9} {'probes':>6}"
        )
        await _one(base, key, "nothing (baseline, 1 s)", _idle)
        await _one(
            base, key, f"save a {nodes}-node chain ({len(big_graph) // 1024} KB)", post("/wf/", big_graph)
        )
        await _one(
            base,
            key,
            f"start with {len(big_inputs) // 1024} KB of inputs",
            post(f"/wf/{small}/start_run/", big_inputs),
        )
        await _one(base, key, "100,000-deep nesting", post(f"/wf/{small}/start_run/", deep))
        await _one(base, key, "50 MB body", post("/wf/", huge))


async def _idle(_client: httpx.AsyncClient) -> int:
    await asyncio.sleep(1.0)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=998, help="nodes of the chain that is saved")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a setting of the stack (repeatable)"
    )
    parser.add_argument("--probe", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--api-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_main(args.probe, args.api_pid)
    else:
        env = dict(item.split("=", 1) for item in args.env)
        print(f"settings: {' '.join(args.env) or 'defaults'}; load average {os.getloadavg()[0]:.1f}")
        asyncio.run(bench_health(args.nodes, env))


if __name__ == "__main__":
    main()
