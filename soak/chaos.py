"""The chaos loop: every few seconds one process of the deployment (an API, a worker, Temporal or
PostgreSQL) is SIGKILLed and restarted after a short delay on the same port and data, or SIGSTOPped
for a few seconds and continued. One fault at a time, so each 5xx can be laid against its cause."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time

from soak.checks import Fault
from soak.deployment import Deployment

log = logging.getLogger("soak")


async def chaos(
    dep: Deployment, rng: random.Random, until: float, faults: list[Fault], gap: tuple[float, float]
) -> None:
    while True:
        await asyncio.sleep(rng.uniform(*gap))
        if time.time() >= until:
            return
        proc = rng.choice(sorted(dep.procs.values(), key=lambda p: p.name))
        kind = "kill" if rng.random() < 0.65 else "stop"
        t0 = time.time()
        if kind == "kill":
            await asyncio.to_thread(dep.kill, proc)
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            await asyncio.to_thread(dep.start_proc, proc)
        else:
            dep.signal(proc, signal.SIGSTOP)
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            dep.signal(proc, signal.SIGCONT)
        faults.append(Fault(proc.name, proc.kind, kind, t0, time.time()))
        log.info("%s %s: back after %.1f s", kind, proc.name, time.time() - t0)
