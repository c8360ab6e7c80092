"""Cost of one sandboxed Python-node run, through the pool alone (no Temporal, no database).

``python -m bench.sandbox [--runs N] [--concurrency C] [--isolation auto|namespaces|none]`` prints
p50/p95/mean latency and the CPU the worker's side and the sandbox processes used per run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

from activities.sandbox import SandboxLimits, SandboxPool
from bench.stats import percentile

CODE = 'return {"y": input_model.input_node.x * 2}'


def _cpu_seconds(zygote_pid: int) -> float:
    """This process, the zygote and the children the zygote has reaped (utime, stime, cutime, cstime)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    with open(f"/proc/{zygote_pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return own.ru_utime + own.ru_stime + ticks / os.sysconf("SC_CLK_TCK")


async def _bench(runs: int, concurrency: int, isolation: str, warmup: int) -> None:
    pool = SandboxPool(python=None, isolation=isolation, limits=SandboxLimits())
    await pool.start()
    for i in range(warmup):
        assert await pool.run(CODE, {"input_node": {"x": i}}) == {"y": 2 * i}
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            result = await pool.run(CODE, {"input_node": {"x": i}})
            latencies.append((time.perf_counter() - started) * 1000)
            assert result == {"y": 2 * i}

    zygote = pool._zygote
    assert zygote is not None and zygote.pid is not None
    cpu_before = _cpu_seconds(zygote.pid)
    wall_started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    wall = time.perf_counter() - wall_started
    await asyncio.sleep(0.5)  # the last children reaped
    cpu = _cpu_seconds(zygote.pid) - cpu_before
    effective = pool.effective_isolation
    await pool.close()
    print(
        f"isolation={effective} runs={runs} concurrency={concurrency} cpus={os.cpu_count()}: "
        f"p50 {percentile(latencies, 50):.2f} ms, p95 {percentile(latencies, 95):.2f} ms, "
        f"mean {sum(latencies) / len(latencies):.2f} ms, {runs / wall:.0f} runs/s, "
        f"CPU {cpu / runs * 1000:.2f} ms/run (pool, zygote and children)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--isolation", default="auto", choices=["auto", "namespaces", "none"])
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(_bench(args.runs, args.concurrency, args.isolation, args.warmup))


if __name__ == "__main__":
    main()
