"""`python -m bench.run --only dashboard`: PySpur's dashboard with 1,000 workflows and 10,000 runs stored.

One fresh `make run` stack. One workflow (input -> Python -> output) is created and run through the API;
then, in SQL, it is cloned to 1,000 workflows (one version each) and its run to 10 runs per workflow
(10,000 runs, each with its 3 task rows), with spread-out times. Measured:

The same data is then put into PySpur 0.1.18 (its own server, SQLite, bench/pyspur.py) the same way.
1. the dashboard's API calls as its page makes them: `GET /api/wf/?page=1&page_size=10`, then the
   `GET /api/wf/{id}/runs/?page=1&page_size=10` of each listed workflow at once (per call, p50/p95);
2. in Chromium (Debian's, through Playwright, logged in with the cookie): from navigation to a rendered
   dashboard: the workflow table's 10 rows drawn and every runs call answered (p50/p95).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.ours import our_stack
from bench.stats import percentile

N_WORKFLOWS = 1000
RUNS_PER_WORKFLOW = 10
REPEATS = 30

GRAPH: dict[str, Any] = {
    "nodes": [
        {
            "id": "input_node",
            "title": "input_node",
            "node_type": "InputNode",
            "coordinates": {"x": 100, "y": 100},
            "config": {"output_schema": {"x": "integer"}},
        },
        {
            "id": "py1",
            "title": "py1",
            "node_type": "PythonFuncNode",
            "coordinates": {"x": 420, "y": 100},
            "config": {
                "code": "return {'y': input_model.input_node.x * 2}",
                "output_schema": {"y": "integer"},
            },
        },
        {
            "id": "output_node",
            "title": "output_node",
            "node_type": "OutputNode",
            "coordinates": {"x": 740, "y": 100},
            "config": {"output_map": {"y": "py1.y"}},
        },
    ],
    "links": [
        {"source_id": "input_node", "target_id": "py1"},
        {"source_id": "py1", "target_id": "output_node"},
    ],
}


async def _columns(conn: Any, table: str) -> list[str]:
    rows = await conn.execute(
        text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t ORDER BY ordinal_position"
        ),
        {"t": table},
    )
    return [r[0] for r in rows]


def _clone(table: str, columns: list[str], overrides: dict[str, str], source: str, where: str) -> str:
    """INSERT ... SELECT copying every column of `table` from `source`, with some replaced by expressions."""
    exprs = [overrides.get(c, f"src.{c}") for c in columns]
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} FROM {source} WHERE {where}"


async def seed(data_dir: Path, base: str, key: str) -> None:
    from db.session import make_engine

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
        wf = (await api.post("/api/wf/", json={"name": "dash", "definition": GRAPH})).json()["id"]
        ran = await api.post(f"/api/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
        assert ran.status_code == 200, ran.text
        run = (await api.get(f"/api/wf/{wf}/runs/")).json()[0]
    engine = make_engine(f"postgresql://postgres@/postgres?host={data_dir / 'pg'}", 2)
    t0 = time.perf_counter()
    async with engine.begin() as conn:
        wcols, vcols = await _columns(conn, "workflows"), await _columns(conn, "workflow_versions")
        rcols, tcols = await _columns(conn, "runs"), await _columns(conn, "tasks")
        minutes = "make_interval(mins => g)"
        await conn.execute(
            text(
                _clone(
                    "workflows",
                    wcols,
                    {
                        "id": "gen_random_uuid()",
                        "name": "src.name || '-' || g",
                        "created_at": f"src.created_at - {minutes}",
                        "updated_at": f"src.updated_at - {minutes}",
                    },
                    f"workflows src, generate_series(1, {N_WORKFLOWS - 1}) g",
                    "src.id = :wf",
                )
            ),
            {"wf": wf},
        )
        await conn.execute(
            text(
                _clone(
                    "workflow_versions",
                    vcols,
                    {"id": "gen_random_uuid()", "workflow_id": "w.id"},
                    "workflow_versions src JOIN workflows o ON o.id = src.workflow_id "
                    "JOIN workflows w ON w.tenant_id = o.tenant_id AND w.id <> o.id",
                    "o.id = :wf",
                )
            ),
            {"wf": wf},
        )
        await conn.execute(
            text(
                _clone(
                    "runs",
                    rcols,
                    {
                        "id": "gen_random_uuid()",
                        "workflow_id": "w.id",
                        "workflow_version_id": "v.id",
                        "start_time": "src.start_time - make_interval(secs => g * 37 + random() * 30)",
                        "end_time": "src.start_time - make_interval(secs => g * 37 - 1)",
                        "created_at": "src.created_at - make_interval(secs => g * 37)",
                    },
                    "runs src JOIN workflows o ON o.id = src.workflow_id "
                    "JOIN workflows w ON w.tenant_id = o.tenant_id "
                    "JOIN workflow_versions v ON v.workflow_id = w.id, "
                    f"generate_series(1, {RUNS_PER_WORKFLOW}) g",
                    "src.id = :run",
                )
            ),
            {"run": run["id"]},
        )
        await conn.execute(
            text(
                _clone(
                    "tasks",
                    tcols,
                    {"id": "gen_random_uuid()", "run_id": "r.id"},
                    "tasks src JOIN runs r ON r.id <> src.run_id AND r.tenant_id = (SELECT tenant_id FROM runs "
                    "WHERE id = :run)",
                    "src.run_id = :run",
                )
            ),
            {"run": run["id"]},
        )
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM workflows), (SELECT count(*) FROM runs), (SELECT count(*) FROM tasks)"
                )
            )
        ).one()
    await engine.dispose()
    print(
        f"[bench] dashboard: seeded workflows/runs/tasks = {tuple(counts)} in {time.perf_counter() - t0:.1f} s"
    )


async def api_calls(base: str, key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """(list call ms, runs call ms, whole sequence ms, a runs call alone ms) over REPEATS dashboard loads."""
    lists, runs, whole, alone = [], [], [], []
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as api:

        async def timed(path: str) -> tuple[float, httpx.Response]:
            t = time.perf_counter()
            resp = await api.get(path)
            assert resp.status_code == 200, resp.text
            return (time.perf_counter() - t) * 1000, resp

        for i in range(REPEATS + 3):
            t0 = time.perf_counter()
            ms, resp = await timed("/api/wf/?page=1&page_size=10")
            per = await asyncio.gather(
                *(timed(f"/api/wf/{w['id']}/runs/?page=1&page_size=10") for w in resp.json())
            )
            total = (time.perf_counter() - t0) * 1000
            assert all(len(r.json()) == RUNS_PER_WORKFLOW for _, r in per), "seeded runs missing"
            if i >= 3:  # warm-up loads are left out
                lists.append(ms)
                runs += [m for m, _ in per]
                whole.append(total)
                alone.append((await timed(f"/api/wf/{resp.json()[0]['id']}/runs/?page=1&page_size=10"))[0])
    return lists, runs, whole, alone


async def browser_loads(base: str, key: str | None) -> list[float]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        print("[bench] dashboard: no chromium; browser figures skipped")
        return []
    times = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = await browser.new_context(base_url=base)
        if key:
            await context.add_cookies([{"name": "ks_uat", "value": key, "url": base}])
        await context.route(
            "**/*", lambda r: r.abort() if not r.request.url.startswith(base) else r.continue_()
        )
        page = await context.new_page()
        answered: list[str] = []
        page.on("response", lambda r: answered.append(r.url) if "/runs/?" in r.url else None)
        for i in range(REPEATS // 2 + 2):
            answered.clear()
            t0 = time.perf_counter()
            await page.goto("/dashboard", wait_until="commit")
            await page.locator("tbody tr").nth(9).wait_for()
            while len(answered) < 10:
                await asyncio.sleep(0.002)
            await page.get_by_text("Spurs Awaiting Human Approval").wait_for()
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1000)
        await browser.close()
    return times


def _line(label: str, values: list[float]) -> str:
    return f"  {label:<58} n={len(values):<4} p50 {percentile(values, 50):8.1f} ms   p95 {percentile(values, 95):8.1f} ms"


async def bench_dashboard() -> None:
    results = {}
    async with our_stack() as (base, key):
        await seed(_data_dir(key), base, key)
        results["ours"] = (*await api_calls(base, key), await browser_loads(base, key))
    from bench.pyspur import PROJECT_DIR, pyspur_server

    async with pyspur_server() as (base, workflow_id):
        run_id = await _one_pyspur_run(base, workflow_id)
        seed_pyspur(PROJECT_DIR / "pyspur.db", workflow_id, run_id)
        results["PySpur 0.1.18"] = (*await api_calls(base, None), await browser_loads(base, None))
    for name, (lists, runs, whole, alone, loads) in results.items():
        print(
            f"\nDashboard, {N_WORKFLOWS} workflows and {N_WORKFLOWS * RUNS_PER_WORKFLOW} runs stored ({name}):"
        )
        print(_line("GET /api/wf/?page=1&page_size=10", lists))
        print(_line("GET /api/wf/{id}/runs/?page=1&page_size=10 (10 at once)", runs))
        print(_line("the list, then the 10 runs calls (the dashboard's sequence)", whole))
        print(_line("GET /api/wf/{id}/runs/?page=1&page_size=10 (one alone)", alone))
        if loads:
            print(_line("Chromium: navigation -> table drawn, all runs calls answered", loads))


async def _one_pyspur_run(base: str, workflow_id: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=60, trust_env=False) as api:
        runs = (await api.get(f"/api/wf/{workflow_id}/runs/")).json()
        run_id: str = runs[0]["id"]
        return run_id


def seed_pyspur(db: Path, workflow_id: str, run_id: str) -> None:
    """The same cloning in PySpur's SQLite file (its ids are generated columns: 'S' || _intid, ...)."""
    t0 = time.perf_counter()
    with sqlite3.connect(db) as conn:

        def cols(table: str) -> list[str]:
            return [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != "_intid"]

        series = "g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {})"
        ago = "strftime('%Y-%m-%d %H:%M:%f', src.{col}, '-' || (g.n * {k}) || ' seconds')"
        wcols, vcols, rcols, tcols = cols("workflows"), cols("workflow_versions"), cols("runs"), cols("tasks")
        conn.execute(
            f"WITH RECURSIVE {series.format(N_WORKFLOWS - 1)} "
            + _clone(
                "workflows",
                wcols,
                {
                    "name": "src.name || '-' || g.n",
                    "created_at": ago.format(col="created_at", k=60),
                    "updated_at": ago.format(col="updated_at", k=60),
                },
                "workflows src, g",
                "src.id = ?",
            ),
            (workflow_id,),
        )
        conn.execute(
            _clone(
                "workflow_versions",
                vcols,
                {"workflow_id": "w.id"},
                "workflow_versions src JOIN workflows w ON w.id <> src.workflow_id",
                "src.workflow_id = ?",
            ),
            (workflow_id,),
        )
        conn.execute(
            f"WITH RECURSIVE {series.format(RUNS_PER_WORKFLOW)} "
            + _clone(
                "runs",
                rcols,
                {
                    "workflow_id": "w.id",
                    "workflow_version_id": "v.id",
                    "start_time": ago.format(col="start_time", k=37),
                    "end_time": ago.format(col="start_time", k=36),
                },
                "runs src JOIN workflows w ON 1 = 1 JOIN workflow_versions v ON v.workflow_id = w.id, g",
                "src.id = ?",
            ),
            (run_id,),
        )
        conn.execute(
            _clone(
                "tasks",
                tcols,
                {"run_id": "r.id"},
                "tasks src JOIN runs r ON r.id <> src.run_id",
                "src.run_id = ?",
            ),
            (run_id,),
        )
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM workflows), (SELECT count(*) FROM runs), (SELECT count(*) FROM tasks)"
        ).fetchone()
    print(
        f"[bench] dashboard: PySpur seeded workflows/runs/tasks = {counts} in {time.perf_counter() - t0:.1f} s"
    )


def _data_dir(key: str) -> Path:
    """The stack's data directory (made by `our_stack` in the temp folder): the one holding this admin key."""
    for found in Path(tempfile.gettempdir()).glob("bench-ours-*/d/admin-api-key"):
        if found.read_text().strip() == key:
            return found.parent
    raise RuntimeError("data directory of the bench stack not found")
