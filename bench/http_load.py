"""Load generators (sequential and fixed concurrency) and validating HTTP senders.

A *sender* is ``async def send(x: int) -> None`` that performs one complete run with input ``x`` and raises if
the result is wrong, so a broken service can never produce a fast figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.definitions import check_run_response, run_body, workflow_create_body
from bench.hostload import CpuSnapshot, cpu_snapshot, other_percent, own_percent
from bench.stats import Measurement

Send = Callable[[int], Awaitable[None]]

DEFAULT_WARMUP = 5


async def sequential(send: Send, n: int, warmup: int = DEFAULT_WARMUP, gap_s: float = 0.0) -> list[float]:
    """Run ``warmup`` untimed then ``n`` timed runs back-to-back; return latencies in ms.

    ``gap_s`` adds think time between runs (0 = back-to-back, the default).
    """
    for i in range(warmup):
        await send(-(i + 1))
    latencies: list[float] = []
    for i in range(n):
        if gap_s and i:
            await asyncio.sleep(gap_s)
        t0 = time.perf_counter()
        await send(i + 1)
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return latencies


async def concurrent(
    send: Send, n: int, concurrency: int, warmup: int = DEFAULT_WARMUP, errors: list[str] | None = None
) -> tuple[list[float], float]:
    """Run ``n`` runs with ``concurrency`` in flight (closed loop); return (latencies ms, wall seconds).

    ``warmup`` untimed runs go first (sequentially) so connection setup is not measured. A failed run raises,
    unless ``errors`` is given: then its message is appended there, its latency is not recorded, and the
    phase goes on (the wall time it cost still counts).
    """
    for i in range(warmup):
        await send(-(i + 1))
    next_index = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal next_index
        while next_index < n:
            x = next_index + 1
            next_index += 1
            t0 = time.perf_counter()
            try:
                await send(x)
            except Exception as exc:
                if errors is None:
                    raise
                errors.append(f"x={x}: {exc}")
                continue
            latencies.append((time.perf_counter() - t0) * 1000.0)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, n)):
            tg.create_task(worker())
    return latencies, time.perf_counter() - start


async def measure(
    name: str,
    send: Send,
    n_seq: int,
    n_conc: int,
    conc: int,
    warmup: int = DEFAULT_WARMUP,
    note: str = "",
    tolerate_errors: bool = False,
) -> tuple[Measurement, Measurement]:
    """Sequential phase then concurrent phase for one system; returns both measurements.

    With ``tolerate_errors`` failures in the concurrent phase are counted (``Measurement.errors``, excluded
    from throughput) instead of aborting; use it only to characterise a third-party system, never ours.
    """
    cpu0 = cpu_snapshot()
    t0 = time.perf_counter()
    seq = await sequential(send, n_seq, warmup)
    seq_wall = time.perf_counter() - t0
    cpu1 = cpu_snapshot()
    errors: list[str] | None = [] if tolerate_errors else None
    conc_lat, conc_wall = await concurrent(send, n_conc, conc, warmup=0, errors=errors)
    cpu2 = cpu_snapshot()
    par = Measurement(name, conc_lat, conc_wall, n_conc, conc, note, *_cpu(cpu1, cpu2))
    if errors:
        par.errors = len(errors)
        print(f"[bench] {name}: {len(errors)} failed runs at concurrency {conc}; first: {errors[0][:300]}")
    return Measurement(name, seq, seq_wall, n_seq, 1, note, *_cpu(cpu0, cpu1)), par


def _cpu(start: CpuSnapshot, end: CpuSnapshot) -> tuple[float, float]:
    return other_percent(start, end), own_percent(start, end)


def new_client(concurrency: int = 16, timeout_s: float = 60.0) -> httpx.AsyncClient:
    """One keep-alive client sized for ``concurrency``; ignores proxy env vars (loopback only)."""
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    return httpx.AsyncClient(timeout=timeout_s, limits=limits, trust_env=False)


def make_run_sender(client: httpx.AsyncClient, run_url: str) -> Send:
    """Sender for a PySpur-compatible blocking run endpoint (response ``{node_id: outputs}``)."""

    async def send(x: int) -> None:
        resp = await client.post(run_url, json=run_body(x))
        if resp.status_code != 200:
            raise RuntimeError(f"POST {run_url} -> {resp.status_code}: {resp.text[:500]}")
        check_run_response(resp.json(), x)

    return send


async def create_workflow(client: httpx.AsyncClient, api_root: str, name: str = "bench-double") -> str:
    """``POST {api_root}/wf/`` with the shared benchmark definition; returns the new workflow id."""
    resp = await client.post(f"{api_root.rstrip('/')}/wf/", json=workflow_create_body(name))
    if resp.status_code != 200:
        raise RuntimeError(f"POST {api_root}/wf/ -> {resp.status_code}: {resp.text[:1000]}")
    workflow_id: str = resp.json()["id"]
    return workflow_id


async def verify_run(
    client: httpx.AsyncClient, api_root: str, workflow_id: str, x: int = 21
) -> dict[str, Any]:
    """One blocking run must answer ``{input_node: {x}, py1: {y}, output_node: {y}}`` with y == 2x."""
    resp = await client.post(f"{api_root.rstrip('/')}/wf/{workflow_id}/run/", json=run_body(x))
    if resp.status_code != 200:
        raise RuntimeError(f"verification run -> {resp.status_code}: {resp.text[:1000]}")
    payload: dict[str, Any] = resp.json()
    check_run_response(payload, x)
    if payload.get("py1") != {"y": 2 * x} or payload.get("input_node") != {"x": x}:
        raise RuntimeError(f"unexpected verification payload: {payload!r}")
    return payload


def make_pyspur_sender(client: httpx.AsyncClient, base_url: str, workflow_id: str) -> Send:
    """PySpur 0.1.18: everything is under ``/api``."""
    return make_run_sender(client, f"{base_url.rstrip('/')}/api/wf/{workflow_id}/run/")
