"""`make bench-scale`: do list and summary calls stay flat as stored data grows?

    python -m bench.scale [--runs 1000000 --workflows 10000 --paused 10000] [--n 50] [--plans]
                          [--keep DIR] [--only TEXT]

Two embedded PostgreSQL servers (pgserver) with the migrations applied; the API in-process (ASGI through httpx, no
network and no Temporal: these reads never reach it). First a near-empty tenant (100 runs, 10 workflows,
10 paused), then the full seed in new tenants of the same database (bench/scale_seed.py: SQL, not the
API); each call is measured against both, sequentially, after warm-ups, and the table prints p50/p95
and the seeded/empty ratio. `--plans` also prints EXPLAIN (ANALYZE, BUFFERS) of every statement the
list calls ran at scale, and any Seq Scan on a big table in them is reported (tests/db/test_list_plans.py
is the check that fails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

import devstack
from bench.ports import free_port
from bench.scale_seed import Seeded, seed
from db.migrate import upgrade_async
from db.session import make_engine
from settings import Settings

BIG_TABLES = ("runs", "tasks", "pauses")  # the tables that grow with runs (as tests/db/test_list_plans.py)


def calls(s: Seeded) -> list[tuple[str, str]]:
    """(label, path) of each measured call; GOAL names those with the < 30 ms goal."""
    wf, paused, done = s.workflow_id, s.paused_run_id, s.run_id
    return [
        ("GET /run/", "/run/"),
        ("GET /wf/{id}/runs/", f"/wf/{wf}/runs/"),
        ("GET /wf/paused_workflows/", "/wf/paused_workflows/"),
        ("GET /v1/workflow-runs (default sort)", "/v1/workflow-runs"),
        (
            "GET /v1/workflow-runs?state=FAILED",
            "/v1/workflow-runs?state=FAILED&sort_by=STARTED_AT&sort_dir=DESC",
        ),
        (
            "GET /v1/workflow-runs?state=COMPLETED&definition_id",
            f"/v1/workflow-runs?state=COMPLETED&definition_id={wf}&sort_by=STARTED_AT",
        ),
        ("GET /v1/workflow-runs?state=IN_PROGRESS", "/v1/workflow-runs?state=IN_PROGRESS"),
        ("GET /v1/workflow-runs?sort_by=CREATED_AT", "/v1/workflow-runs?sort_by=CREATED_AT&sort_dir=DESC"),
        ("GET /v1/workflow-runs?sort_by=COMPLETED_AT", "/v1/workflow-runs?sort_by=COMPLETED_AT"),
        ("GET /v1/workflow-runs/summary", "/v1/workflow-runs/summary"),
        ("GET /v1/workflow-runs/summary?definition_id", f"/v1/workflow-runs/summary?definition_id={wf}"),
        ("GET /wf/", "/wf/"),
        ("GET /wf/pause_history/{id}/", f"/wf/pause_history/{done}/"),
        ("GET /run/{id}/tasks/", f"/run/{paused}/tasks/"),
        ("GET /v1/workflow-runs?state=NOT_STARTED (drafts)", "/v1/workflow-runs?state=NOT_STARTED"),
        ("GET /v1/workflow-definitions", "/v1/workflow-definitions"),
        ("GET /v1/workflow-definitions/{id}/runs", f"/v1/workflow-definitions/{wf}/runs"),
        ("GET /metrics (DB gauges)", "/metrics"),
    ]


GOAL = (
    "GET /run/",
    "GET /wf/{id}/runs/",
    "GET /wf/paused_workflows/",
    "GET /v1/workflow-runs",
    "GET /v1/workflow-runs/summary",
)


@contextmanager
def captured_sql() -> Iterator[list[tuple[str, Any]]]:
    """Every statement the process sends while inside, with its parameters (the real queries of db/)."""
    seen: list[tuple[str, Any]] = []

    def keep(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", keep)


def pct(samples: list[float], q: float) -> float:
    return (
        statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]
        if len(samples) > 1
        else samples[0]
    )


async def explain(engine: AsyncEngine, statements: list[tuple[str, Any]]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each SELECT; returns the Seq Scans on big tables it found."""
    found = []
    async with engine.connect() as conn:
        for sql, params in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            rows = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n".join(r[0] for r in rows)
            print(f"\n--- {sql[:300]}{'...' if len(sql) > 300 else ''}\n{plan}")
            found += [
                line.strip()
                for line in plan.splitlines()
                if any(f"Seq Scan on {t} " in line for t in BIG_TABLES)
            ]
    return found


@contextlib.asynccontextmanager
async def database(tmp: Path, name: str) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """Its own embedded PostgreSQL, migrated; yields (url, engine)."""
    pg = devstack.start_postgres(tmp / name)
    try:
        url = devstack.postgres_url(pg)
        await upgrade_async(url)
        engine = make_engine(url, pool_size=2)
        try:
            yield url, engine
        finally:
            await engine.dispose()
    finally:
        devstack.stop_postgres(pg)


@contextlib.asynccontextmanager
async def api(tmp: Path, url: str, key: str) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    settings = Settings(
        _env_file=None,
        database_url=url,
        data_dir=tmp / "data",
        # Never dialled: these reads do not touch Temporal and the client connects lazily.
        temporal_address=f"127.0.0.1:{free_port()}",
        api_embedded_worker=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://scale", headers=headers) as client:
            yield client


async def kept_seed(record: Path, engine: AsyncEngine, **sizes: int) -> Seeded:
    """The seed named in `record` when a kept database has one (the sizes it was seeded with win),
    else a new seed, recorded there."""
    if record.exists():
        return Seeded.from_json(record.read_text())
    s = await seed(engine, **sizes)
    record.write_text(s.to_json())
    return s


async def get_ms(client: httpx.AsyncClient, path: str) -> float:
    t0 = time.perf_counter()
    r = await client.get(path)
    ms = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return ms


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--paused", type=int, default=10_000)
    parser.add_argument("--tasks-per-run", type=int, default=2)
    parser.add_argument("--n", type=int, default=50, help="timed calls per endpoint and database")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--plans", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) at scale")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep both databases in this folder and reuse them next time (seeded once; migrations applied)",
    )
    parser.add_argument("--only", help="measure only the calls whose label contains this text")
    args = parser.parse_args(argv)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bsc-", dir="/tmp"))
    empty: dict[str, list[float]] = {}
    seeded: dict[str, list[float]] = {}
    try:
        async with database(tmp, "pg-empty") as (url_e, eng_e), database(tmp, "pg-big") as (url_b, eng_b):
            small = await kept_seed(
                tmp / "seeded-empty.json",
                eng_e,
                runs=100,
                workflows=10,
                paused=10,
                tasks_per_run=args.tasks_per_run,
            )
            t0 = time.perf_counter()
            big = await kept_seed(
                tmp / "seeded-big.json",
                eng_b,
                runs=args.runs,
                workflows=args.workflows,
                paused=args.paused,
                tasks_per_run=args.tasks_per_run,
            )
            print(
                f"[scale] {args.runs} runs seeded (or reused) in {time.perf_counter() - t0:.0f} s", flush=True
            )
            async with api(tmp, url_e, small.api_key) as ce, api(tmp, url_b, big.api_key) as cb:
                for (label, path_e), (_, path_b) in zip(calls(small), calls(big), strict=True):
                    if args.only and args.only not in label:
                        continue
                    for _ in range(args.warmup):
                        await get_ms(ce, path_e)
                        await get_ms(cb, path_b)
                    empty[label], seeded[label] = [], []
                    # Interleaved, so load from elsewhere on the machine falls on both alike.
                    for _ in range(args.n):
                        empty[label].append(await get_ms(ce, path_e))
                        seeded[label].append(await get_ms(cb, path_b))
                    if args.plans and not label.startswith("GET /metrics"):
                        with captured_sql() as seen:
                            await get_ms(cb, path_b)
                        print(f"\n===== plans of {label}", flush=True)
                        bad = await explain(eng_b, seen)
                        if bad:
                            print(f"!!!!! Seq Scan on a big table in {label}: {bad}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nscale: {args.runs} runs, {args.workflows} workflows, {args.paused} paused "
        f"(80% in the caller's tenant) vs 100 runs, 10 workflows, 10 paused; {args.n} calls each, "
        "interleaved, in-process ASGI"
    )
    print("| call | empty p50 ms | seeded p50 ms | seeded p95 ms | seeded/empty | goal |")
    print("|---|---|---|---|---|---|")
    for label, samples in seeded.items():
        e50, s50, s95 = pct(empty[label], 50), pct(samples, 50), pct(samples, 95)
        ratio = s50 / e50
        goal = ""
        if label.split(" (")[0].split("?")[0] in GOAL and "NOT_STARTED" not in label:
            goal = "ok" if s50 < 30 and ratio <= 1.5 else "MISSED"
        print(f"| {label} | {e50:.1f} | {s50:.1f} | {s95:.1f} | {ratio:.2f} | {goal} |")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
