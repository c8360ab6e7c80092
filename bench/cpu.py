"""Where the CPU of a blocking run goes: CPU-ms per run of each process of one `make run` stack, the
PostgreSQL transactions per run and the Temporal history events of one run.

    python -m bench.run --only cpu [--n-seq 100] [--levers]

Wall-clock latency on a shared 2-core machine moves with whatever else runs; the CPU a process spends
per run does not move much, so this is the figure to compare A/B. Each variant is one fresh stack; the
runs are back-to-back after the warm-ups, and each process's utime+stime (all its threads, from /proc)
is read before and after. PostgreSQL is the postmaster and all its backends.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from temporalio.client import Client

from bench.http_load import create_workflow, make_run_sender, new_client, sequential, verify_run
from bench.ours import our_stack

_TICK_MS = 1000.0 / 100  # USER_HZ
ROLES = ("api", "worker", "temporal", "postgres")


@dataclass
class CpuRow:
    note: str
    runs: int
    p50_ms: float
    wall_ms: float  # wall time per run
    cpu_ms: dict[str, float]  # role -> CPU ms per run
    pg_xacts: float  # PostgreSQL transactions per run (commits + rollbacks, every database client)
    history_events: int  # Temporal history events of the last run
    load: float  # 1-minute load average at the end


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, utime+stime ticks, cmdline)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), cmd)
    return table


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(kv.decode(errors="replace").split("=", 1) for kv in raw if b"=" in kv)


def _roles(port: int) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Role -> pids of the stack whose API listens on `port`, and the API's environment."""
    table = _proc_table()
    api = next(pid for pid, (_, _, cmd) in table.items() if "uvicorn" in cmd and f"--port {port} " in cmd)
    devstack = table[api][0]
    env = _environ(api)
    data_dir = env["DATA_DIR"]
    roles: dict[str, list[int]] = {r: [] for r in ROLES}
    roles["api"].append(api)
    postmaster = None
    for pid, (ppid, _, cmd) in table.items():
        if ppid == devstack and cmd.rstrip().endswith("worker.py"):
            roles["worker"].append(pid)
        elif ppid == devstack and "server start-dev" in cmd:
            roles["temporal"].append(pid)
        elif "postgres" in cmd and f"{data_dir}/pg" in cmd:
            postmaster = pid
    for pid, (ppid, _, _) in table.items():
        if postmaster is not None and postmaster in (pid, ppid):
            roles["postgres"].append(pid)
    return roles, env


def _cpu(roles: dict[str, list[int]]) -> dict[str, int]:
    table = _proc_table()
    return {role: sum(table[p][1] for p in pids if p in table) for role, pids in roles.items()}


async def _xacts(database_url: str) -> int:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        value: int = await conn.fetchval("SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database")
        return value
    finally:
        await conn.close()


async def _history_events(temporal_address: str) -> int:
    client = await Client.connect(temporal_address)
    async for wf in client.list_workflows("WorkflowType = 'RunWorkflow'", limit=1):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        for e in history.events:
            print(
                f"[bench] cpu: history event {e.event_id} {e.event_time.ToDatetime().time()} {e.event_type}"
            )
        return len(history.events)
    return -1


async def bench_cpu(n: int, warmup: int, **env: str) -> CpuRow:
    note = " ".join(f"{k}={v}" for k, v in env.items()) or "defaults"
    async with our_stack(**env) as (base, key), new_client(4) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        workflow_id = await create_workflow(client, base)
        await verify_run(client, base, workflow_id)
        send = make_run_sender(client, f"{base}/wf/{workflow_id}/run/")
        await sequential(send, 0, warmup)
        roles, api_env = _roles(int(base.rsplit(":", 1)[1]))
        missing = [r for r, pids in roles.items() if not pids]
        if missing:
            raise RuntimeError(f"processes not found for {missing}")
        db_url = api_env["DATABASE_URL"]
        x0 = await _xacts(db_url)
        before = _cpu(roles)
        t0 = time.perf_counter()
        lat = await sequential(send, n, 0)
        wall = time.perf_counter() - t0
        after = _cpu(roles)
        x1 = await _xacts(db_url)
        events = await _history_events(api_env["TEMPORAL_ADDRESS"])
        return CpuRow(
            note,
            n,
            statistics.median(lat),
            wall * 1000 / n,
            {r: (after[r] - before[r]) * _TICK_MS / n for r in ROLES},
            (x1 - x0 - 1) / n,  # less the reading connection's own first count
            events,
            float(Path("/proc/loadavg").read_text().split()[0]),
        )


def print_cpu(rows: list[CpuRow]) -> None:
    print("\n## CPU per blocking run (CPU ms per run, back-to-back sequential runs)")
    print(
        "| variant | runs | p50 ms | wall ms/run | "
        + " | ".join(ROLES)
        + " | sum | PG xacts/run | history events | load |"
    )
    print("|---|---|---|---|" + "---|" * len(ROLES) + "---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{r.cpu_ms[k]:.1f}" for k in ROLES)
        print(
            f"| {r.note} | {r.runs} | {r.p50_ms:.1f} | {r.wall_ms:.1f} | {cells} | {sum(r.cpu_ms.values()):.1f}"
            f" | {r.pg_xacts:.1f} | {r.history_events} | {r.load:.2f} |"
        )
