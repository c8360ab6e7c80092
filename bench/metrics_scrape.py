"""`python -m bench.metrics_scrape [--runs 10000]`: what one API `/metrics` scrape costs with many runs stored.

A fresh embedded PostgreSQL gets `--runs` runs (1% paused with an open pause, 1% running, the rest
finished), then the scrape's database gauges and exposition are timed in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert, literal, select

import devstack
from db import accounts
from db.migrate import upgrade_async
from db.models import Pause, Run, Workflow, utcnow
from db.session import make_engine, make_session_factory
from telemetry import db_gauges, metrics


async def main(n_runs: int, scrapes: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="scrape-", dir="/tmp"))
    pg = devstack.start_postgres(tmp / "pg")
    try:
        url = devstack.postgres_url(pg)
        await upgrade_async(url)
        engine = make_engine(url, pool_size=2)
        sessions = make_session_factory(engine)
        async with sessions() as session, session.begin():
            tenant = await accounts.create_tenant(session, "bench")
            wf = Workflow(tenant_id=tenant.id, name="w", definition={"nodes": [], "links": []})
            session.add(wf)
            await session.flush()
            now = utcnow()
            runs = []
            for i in range(n_runs):
                status = "PAUSED" if i % 100 == 0 else "RUNNING" if i % 100 == 1 else "COMPLETED"
                runs.append(
                    {"id": uuid.uuid4(), "tenant_id": tenant.id, "workflow_id": wf.id, "status": status}
                )
            await session.execute(insert(Run), runs)
            pauses = [
                {"run_id": r["id"], "node_id": "h", "seq": 1, "pause_time": now}
                for r in runs
                if r["status"] == "PAUSED"
            ]
            await session.execute(insert(Pause), pauses)
        async with sessions() as session:
            await session.execute(Run.__table__.select().limit(1))  # warm the pool
        m = metrics.get_metrics()
        times, db_times = [], []
        for _ in range(scrapes):
            start = time.perf_counter()
            async with sessions() as session:
                await db_gauges.refresh_from_db(session, m)
            db_times.append((time.perf_counter() - start) * 1000)
            metrics.exposition(m)
            times.append((time.perf_counter() - start) * 1000)
        baseline = []
        for _ in range(scrapes):
            start = time.perf_counter()
            async with sessions() as session:
                await session.execute(select(literal(1)))
            baseline.append((time.perf_counter() - start) * 1000)
        times.sort()
        print(
            f"of which the database gauges: p50 {statistics.median(db_times):.2f} ms "
            f"(a bare SELECT 1 in a session here: p50 {statistics.median(baseline):.2f} ms)"
        )
        print(
            f"/metrics scrape with {n_runs} runs stored ({len(pauses)} paused): "
            f"p50 {statistics.median(times):.2f} ms, p95 {times[int(len(times) * 0.95)]:.2f} ms "
            f"over {scrapes} scrapes"
        )
        await engine.dispose()
    finally:
        devstack.stop_postgres(pg)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.scrapes))
