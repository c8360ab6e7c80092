"""The floor: a bare Temporal workflow doing the benchmark's work in one activity; no API, no database.

Worker and client share one ``Client`` in this process. ``eager=True`` sets ``request_eager_start=True`` on
``start_workflow``; the server only honours it when started with
``--dynamic-config-value system.enableEagerWorkflowStart=true`` (otherwise it silently falls back to a normal
start), and only because the starting client is the one the worker polls with.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.floor_workflow import DoubleWorkflow, double
from bench.http_load import DEFAULT_WARMUP, Send, measure
from bench.stats import FLOOR, Measurement


def make_floor_sender(client: Client, task_queue: str, eager: bool, counts: dict[str, int]) -> Send:
    """Sender for the floor; ``counts`` tallies ``runs`` and ``eager`` (runs the server started eagerly)."""

    async def send(x: int) -> None:
        handle = await client.start_workflow(
            DoubleWorkflow.run,
            {"x": x},
            id=f"floor-{uuid.uuid4()}",
            task_queue=task_queue,
            request_eager_start=eager,
        )
        counts["runs"] = counts.get("runs", 0) + 1
        counts["eager"] = counts.get("eager", 0) + int(getattr(handle, "__temporal_eagerly_started", False))
        result = await handle.result()
        if result != {"y": 2 * x}:
            raise ValueError(f"floor workflow returned {result!r} for x={x}")

    return send


async def run_floor(
    temporal_address: str,
    n_seq: int,
    n_conc: int,
    conc: int,
    eager: bool = False,
    warmup: int = DEFAULT_WARMUP,
    namespace: str = "default",
) -> tuple[Measurement, Measurement]:
    """Measure the floor: (sequential, concurrent) measurements named ``floor`` or ``floor-eager``."""
    client = await Client.connect(
        temporal_address, namespace=namespace, data_converter=pydantic_data_converter
    )
    task_queue = f"bench-floor-{uuid.uuid4()}"
    worker = Worker(client, task_queue=task_queue, workflows=[DoubleWorkflow], activities=[double])
    worker_task = asyncio.create_task(worker.run())
    name = f"{FLOOR}-eager" if eager else FLOOR
    counts: dict[str, int] = {}
    try:
        seq, par = await measure(
            name, make_floor_sender(client, task_queue, eager, counts), n_seq, n_conc, conc, warmup
        )
    finally:
        await worker.shutdown()
        await worker_task
    seq.note = par.note = _note(eager, counts)
    return seq, par


def _note(eager: bool, counts: dict[str, int]) -> str:
    if not eager:
        return "1 activity"
    return f"1 activity, eager start {counts.get('eager', 0)}/{counts.get('runs', 0)}"
