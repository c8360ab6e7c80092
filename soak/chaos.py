"""The chaos loop: every few seconds a process of the deployment (an API, a worker, Temporal or
PostgreSQL: the kind first, uniformly, then one of its processes) is SIGKILLed and restarted after a
short delay on the same port and data, or SIGSTOPped for a few seconds and continued. A fault lasts
until its process is back; at most `at_once` are in force together, never two on one process."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time

from soak.checks import Fault
from soak.deployment import Deployment, Proc

log = logging.getLogger("soak")


async def chaos(
    dep: Deployment,
    rng: random.Random,
    until: float,
    faults: list[Fault],
    gap: tuple[float, float],
    at_once: int = 2,
) -> None:
    busy: set[str] = set()
    tasks: set[asyncio.Task[None]] = set()
    while True:
        await asyncio.sleep(rng.uniform(*gap))
        if time.time() >= until:
            break
        free = [p for p in sorted(dep.procs.values(), key=lambda p: p.name) if p.name not in busy]
        if len(busy) >= at_once or not free:
            continue
        kind = rng.choice(sorted({p.kind for p in free}))
        proc = rng.choice([p for p in free if p.kind == kind])
        busy.add(proc.name)
        task = asyncio.create_task(_fault(dep, proc, rng, faults, busy))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def _fault(
    dep: Deployment, proc: Proc, rng: random.Random, faults: list[Fault], busy: set[str]
) -> None:
    kind = "kill" if rng.random() < 0.65 else "stop"
    t0 = time.time()
    try:
        if kind == "kill":
            await asyncio.to_thread(dep.kill, proc)
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            await asyncio.to_thread(dep.start_proc, proc)
        else:
            dep.signal(proc, signal.SIGSTOP)
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            dep.signal(proc, signal.SIGCONT)
    finally:
        faults.append(Fault(proc.name, proc.kind, kind, t0, time.time()))
        busy.discard(proc.name)
    log.info("%s %s: back after %.1f s", kind, proc.name, time.time() - t0)
