"""`python -m bench.run --only batch`: a CSV dataset through input -> PythonFunc (y = 2x) -> output as a batch.

1. ours: one fresh `make run` stack; a ``rows``-row CSV (``x`` = 0..rows-1) is uploaded (`POST /ds/`) and
   batch-run once per mini-batch size (`POST /wf/{id}/start_batch_run/`), one after the other on the same
   stack. Wall time runs from sending start_batch_run until `GET /run/{id}/` (polled every 0.25 s) shows
   COMPLETED. Every ~0.5 s the RSS and PSS of the API, the worker, the Temporal dev server and PostgreSQL
   (all its processes) are sampled from /proc, and their CPU time over the batch is read at both ends.
   The output file must have one line per row, in order, y == 2x and no `_error`, or the figure is void.
2. PySpur 0.1.18 on ``pyspur_rows`` rows (mini_batch_size 10, its default), same graph plus the
   `input_schema` its batch needs, with a time limit. As installed from PyPI its output folder
   (`site-packages/output_files/`) does not exist, so the batch dies after its first mini-batch and the parent
   stays PENDING; that is reported as seen. Then the folder is created (and removed afterwards) and the batch
   is run again, to get a figure for the side-by-side.

Targets (2-core machine): >= 200 rows/s, no process above 500 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.definitions import workflow_definition
from bench.hitl import _descendants, _proc_table, _pss_kb, _rss_kb, find_stack_processes
from bench.hostload import cpu_snapshot, other_percent
from bench.http_load import new_client
from bench.ours import our_stack
from bench.pyspur import PROJECT_DIR, VENV_DIR, pyspur_server

NAME = "batch"
TARGET_ROWS_PER_S = 200.0
TARGET_MB = 500.0
SAMPLE_S = 0.5
POLL_S = 0.25
CLK_TCK = os.sysconf("SC_CLK_TCK")
OURS_TIMEOUT_S = 900.0
API_OUTAGE_S = 90.0
PYSPUR_STALL_S = 30.0  # PySpur: no new child run for this long and the parent not done -> give up early


def _log(msg: str) -> None:
    print(f"[bench] {NAME}: {msg}", flush=True)


def batch_definition() -> dict[str, Any]:
    """The shared benchmark graph plus PySpur's `input_schema` (its batch needs it; ours accepts it)."""
    defn = workflow_definition()
    inp = next(n for n in defn["nodes"] if n["node_type"] == "InputNode")
    inp["config"]["input_schema"] = {"x": "integer"}
    return defn


def csv_bytes(rows: int) -> bytes:
    return ("x\n" + "".join(f"{i}\n" for i in range(rows))).encode()


# ------------------------------------------------------------------------------------- process sampling


@dataclass
class Group:
    """One component: the process ``root`` ("self"), ``root`` and its descendants ("tree"), or the descendants
    alone ("children")."""

    label: str
    root: int
    kind: str = "self"
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    peak_single_rss_kb: int = 0  # largest single process of the group
    peak_nprocs: int = 0
    start_jiffies: dict[int, int] = field(default_factory=dict)
    last_jiffies: dict[int, int] = field(default_factory=dict)
    alive: set[int] = field(default_factory=set)  # pids seen at the latest sample

    def pids(self, table: dict[int, Any]) -> list[int]:
        if self.kind == "self":
            return [self.root]
        below = _descendants(table, self.root)
        return below if self.kind == "children" else [self.root, *below]


class Sampler:
    """Samples RSS/PSS every ``SAMPLE_S`` and CPU jiffies of each group while running (async context)."""

    def __init__(self, groups: list[Group]) -> None:
        self.groups = groups
        self.samples = 0
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self.seconds = 0.0
        self._cpu0 = cpu_snapshot()
        self.other_pct = math.nan

    def _sample(self, first: bool = False) -> None:
        table = _proc_table()
        for g in self.groups:
            pids = g.pids(table)
            rss = [_rss_kb(pid) for pid in pids]
            g.peak_rss_kb = max(g.peak_rss_kb, sum(rss))
            g.peak_single_rss_kb = max(g.peak_single_rss_kb, max(rss, default=0))
            g.peak_pss_kb = max(g.peak_pss_kb, sum(_pss_kb(pid) for pid in pids))
            g.peak_nprocs = max(g.peak_nprocs, len(pids))
            g.alive = set()
            for pid in pids:
                j = _ticks(pid)
                if j is None:
                    continue
                if first:
                    g.start_jiffies[pid] = j
                g.last_jiffies[pid] = j  # a process born in the window counts whole
                g.alive.add(pid)
        self.samples += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            await asyncio.to_thread(self._sample)

    async def __aenter__(self) -> Sampler:
        self._cpu0 = cpu_snapshot()
        self._t0 = time.perf_counter()
        self._sample(first=True)
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sample()
        self.seconds = time.perf_counter() - self._t0
        self.other_pct = other_percent(self._cpu0, cpu_snapshot())

    def cpu_pct(self, g: Group) -> float:
        """% of one core used by the group over the window, children reaped meanwhile included.

        Processes that exited during the window are left out: their time went to their parent's cutime.
        """
        ticks = sum(j - g.start_jiffies.get(pid, 0) for pid, j in g.last_jiffies.items() if pid in g.alive)
        return 100.0 * ticks / CLK_TCK / self.seconds if self.seconds else math.nan


def _ticks(pid: int) -> int | None:
    """utime + stime + cutime + cstime: the process and its reaped children (short-lived sandbox forks)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])


def _mb(kb: int) -> float:
    return kb / 1024.0


# ------------------------------------------------------------------------------------------------ results


@dataclass
class BatchResult:
    system: str
    rows: int
    mini_batch: int
    wall_s: float | None  # None: did not complete
    first_row_s: float | None = None  # start_batch_run sent -> rows_done > 0 first seen
    start_call_ms: float = math.nan
    verdict: str = ""  # output check, or what was seen when it did not complete
    note: str = ""
    outages: list[str] = field(default_factory=list)
    sampler: Sampler | None = None

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.wall_s if self.wall_s else None


def _fmt(v: float | None, spec: str) -> str:
    if v is None or math.isnan(v):
        return format("-", f">{spec.split('.')[0] or '0'}")
    return format(v, spec)


def print_results(results: list[BatchResult], baseline: Sampler | None) -> None:
    print(f"\n== {NAME}: CSV rows through input -> PythonFunc (y = 2x) -> output, as one batch run")
    header = f"{'system':<8}{'rows':>7}{'mini':>6}{'wall s':>9}{'rows/s':>9}{'1st row s':>11}{'start ms':>10}  output / note"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.system:<8}{r.rows:>7}{r.mini_batch:>6}{_fmt(r.wall_s, '9.1f')}{_fmt(r.rows_per_s, '9.1f')}"
            f"{_fmt(r.first_row_s, '11.2f')}{_fmt(r.start_call_ms, '10.0f')}  {r.verdict}"
            + (f" [{r.note}]" if r.note else "")
        )
    sampled = [(f"{r.system} mini={r.mini_batch}", r.sampler) for r in results if r.sampler]
    if baseline is not None:
        sampled.insert(0, ("ours idle, before", baseline))
    if not sampled:
        return
    print(
        f"\nprocesses while each batch ran: peak RSS and PSS sampled every {SAMPLE_S} s, CPU over the batch "
        f"(% of one core; {os.cpu_count()} cores)"
    )
    head = f"{'phase':<20}{'s':>6}{'samples':>8}  {'component':<17}{'procs':>6}{'RSS MB':>9}{'PSS MB':>9}{'max 1 proc':>11}{'CPU %':>7}"
    print(head)
    print("-" * len(head))
    for phase, s in sampled:
        for i, g in enumerate(s.groups):
            lead = f"{phase:<20}{s.seconds:6.0f}{s.samples:>8}" if i == 0 else " " * 34
            print(
                f"{lead}  {g.label:<17}{g.peak_nprocs:>6}{_mb(g.peak_rss_kb):9.0f}{_mb(g.peak_pss_kb):9.0f}"
                f"{_mb(g.peak_single_rss_kb):11.0f}{s.cpu_pct(g):7.0f}"
            )
        print(
            f"{'':34}  {'(other processes)':<17}{'':>6}{'':>9}{'':>9}{'':>11}{(os.cpu_count() or 1) * s.other_pct:7.0f}"
        )
    print(
        "  RSS/PSS of a group are peaks of the sum over its processes; 'max 1 proc' is its largest single process.\n"
        "  PSS splits shared pages (PostgreSQL's shared buffers) among their users. '(other processes)' is CPU\n"
        "  used by processes outside the benchmark (noise), in the same unit."
    )


def print_targets(results: list[BatchResult]) -> None:
    ours = [r for r in results if r.system == "ours"]
    print(
        f"\ntargets (2-core machine): >= {TARGET_ROWS_PER_S:.0f} rows/s; no process above {TARGET_MB:.0f} MB"
    )
    for r in ours:
        ok = r.rows_per_s is not None and r.rows_per_s >= TARGET_ROWS_PER_S and r.verdict.startswith("ok")
        print(
            f"  rows/s mini={r.mini_batch:<3}: {'met' if ok else 'NOT met'} "
            f"({_fmt(r.rows_per_s, '.1f')} rows/s{'' if r.verdict.startswith('ok') else '; output wrong'})"
        )
    worst: tuple[float, str] = (0.0, "")
    for r in ours:
        if r.sampler is None:
            continue
        for g in r.sampler.groups:
            worst = max(worst, (_mb(g.peak_single_rss_kb), f"{g.label} (mini={r.mini_batch})"))
    if worst[1]:
        verdict = "met" if worst[0] <= TARGET_MB else "NOT met"
        print(f"  memory       : {verdict} (largest single process RSS {worst[0]:.0f} MB: {worst[1]})")
    print(flush=True)


# ------------------------------------------------------------------------------------------------- ours


async def _call(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
    resp = await client.request(method, url, **kw)
    if resp.status_code != 200:
        raise RuntimeError(f"{method} {url} -> {resp.status_code}: {resp.text[:500]}")
    return resp.json()


def check_output(text: str, rows: int, ours: bool) -> str:
    """'ok ...' if there is one line per row, in order, with y == 2x (and `_error` null for ours)."""
    lines = text.splitlines()
    if len(lines) != rows:
        return f"WRONG: {len(lines)} lines for {rows} rows"
    for i, raw in enumerate(lines):
        line = json.loads(raw)
        if ours and (line.get("_row") != i or line.get("_error") is not None):
            return f"WRONG: line {i}: _row {line.get('_row')!r}, _error {line.get('_error')!r}"
        x = (line.get("input_node") or {}).get("x")
        y = (line.get("py1") or {}).get("y")
        out = (line.get("output_node") or {}).get("y")
        if x != i or y != 2 * i or out != 2 * i:
            return f"WRONG: line {i}: input_node.x {x!r}, py1.y {y!r}, output_node.y {out!r}"
    return f"ok ({rows} lines in order, y = 2x{', no _error' if ours else ''})"


async def _our_batch(
    client: httpx.AsyncClient,
    base: str,
    workflow_id: str,
    dataset_id: str,
    rows: int,
    size: int,
    groups: list[Group],
) -> BatchResult:
    result = BatchResult("ours", rows, size, None)
    async with Sampler(groups) as sampler:
        t0 = time.perf_counter()
        parent = await _call(
            client,
            "POST",
            f"{base}/wf/{workflow_id}/start_batch_run/",
            json={"dataset_id": dataset_id, "mini_batch_size": size},
        )
        result.start_call_ms = (time.perf_counter() - t0) * 1000.0
        run: dict[str, Any] = parent
        last_log = t0
        down_since: float | None = None  # the API did not answer (devstack restarts a component that exits)
        while True:
            try:
                run = await _call(client, "GET", f"{base}/run/{parent['id']}/")
            except httpx.TransportError as exc:
                now = time.perf_counter()
                if down_since is None:
                    down_since = now
                    _log(f"  mini={size}: API unreachable at +{now - t0:.0f} s ({exc!r:.100}); retrying")
                if now - down_since > API_OUTAGE_S:
                    run = {"status": f"unknown (API unreachable for {now - down_since:.0f} s)"}
                    break
                await asyncio.sleep(1.0)
                continue
            now = time.perf_counter()
            if down_since is not None:
                result.outages.append(
                    f"API unreachable {now - down_since:.0f} s from +{down_since - t0:.0f} s"
                )
                down_since = None
            if result.first_row_s is None and (run.get("rows_done") or 0) > 0:
                result.first_row_s = now - t0
            if run.get("status") in ("COMPLETED", "FAILED", "CANCELED"):
                break
            if now - t0 > OURS_TIMEOUT_S:
                break
            if now - last_log > 15:
                last_log = now
                _log(f"  mini={size}: {run.get('rows_done')}/{rows} rows after {now - t0:.0f} s")
            await asyncio.sleep(POLL_S)
        wall = time.perf_counter() - t0
    result.sampler = sampler
    counts = f"rows_done {run.get('rows_done')}, rows_failed {run.get('rows_failed')}"
    if run.get("status") != "COMPLETED":
        result.verdict = f"did not complete: status {run.get('status')} after {wall:.0f} s, {counts}, error {run.get('error')!r}"
        return result
    resp = await client.get(f"{base}/of/{parent['output_file_id']}/download/")
    if resp.status_code != 200:
        result.verdict = f"WRONG: download -> {resp.status_code}: {resp.text[:200]}"
        return result
    result.verdict = check_output(resp.text, rows, ours=True)
    if run.get("rows_total") != rows or run.get("rows_done") != rows or run.get("rows_failed"):
        result.verdict = f"WRONG: {counts}, rows_total {run.get('rows_total')}"
    if result.verdict.startswith("ok"):
        result.wall_s = wall
    return result


def _stack_groups() -> list[Group]:
    procs = find_stack_processes()
    g = procs.groups
    worker = g["worker (worker.py)"][0]
    return [
        Group("api", g["api (uvicorn)"][0]),
        Group("api children", g["api (uvicorn)"][0], kind="children"),  # its embedded worker's sandbox
        Group("worker", worker),
        Group("worker children", worker, kind="children"),  # sandbox zygote and its forks
        Group("temporal", g["temporal start-dev"][0]),
        Group("postgres (all)", g["postgres (all)"][0], kind="tree"),
    ]


async def bench_ours_batch(rows: int, sizes: list[int]) -> tuple[list[BatchResult], Sampler]:
    results: list[BatchResult] = []
    async with our_stack() as (base, key), new_client(4, timeout_s=120.0) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        groups = _stack_groups()
        data_dir = Path(find_stack_processes().data_dir)
        _log("stack processes: " + ", ".join(f"{g.label} {g.root}" for g in groups if g.kind != "children"))
        workflow = await _call(
            client,
            "POST",
            f"{base}/wf/",
            json={"name": f"bench-batch-{uuid.uuid4().hex[:8]}", "definition": batch_definition()},
        )
        dataset = await _call(
            client,
            "POST",
            f"{base}/ds/",
            params={"name": f"bench-batch-{uuid.uuid4().hex[:8]}"},
            files={"file": (f"rows-{rows}.csv", csv_bytes(rows), "text/csv")},
        )
        # one small batch first: the first batch pays for imports and connection set-up
        warm = await _our_batch(client, base, workflow["id"], await _small_dataset(client, base), 20, 10, [])
        _log(f"warm-up batch (20 rows): {warm.verdict}")
        await asyncio.sleep(2.0)
        async with Sampler(_stack_groups()) as baseline:
            await asyncio.sleep(3.0)
        for size in sizes:
            _log(f"ours: {rows} rows, mini_batch_size {size}")
            before = {g.label: g.root for g in groups if g.kind != "children"}
            try:
                res = await _our_batch(client, base, workflow["id"], dataset["id"], rows, size, groups)
            except Exception as exc:  # keep the other sizes and PySpur; say what happened
                res = BatchResult("ours", rows, size, None, verdict=f"did not complete: {exc!r:.300}")
            groups = await _regroup()
            after = {g.label: g.root for g in groups if g.kind != "children"}
            restarted = [k for k in before if before[k] != after.get(k)]
            if restarted:
                res.note = "; ".join([*res.outages, f"restarted by devstack: {', '.join(restarted)}"])
            elif res.outages:
                res.note = "; ".join(res.outages)
            _log(
                f"  mini={size}: {res.verdict}; wall {_fmt(res.wall_s, '.1f')} s, {_fmt(res.rows_per_s, '.1f')} rows/s"
                + (f" [{res.note}]" if res.note else "")
            )
            if restarted or res.outages or not res.verdict.startswith("ok"):
                _print_stack_logs(
                    data_dir, [k for k in ("api", "worker", "temporal") if k in restarted] or ["api"]
                )
            results.append(res)
            await asyncio.sleep(2.0)
    return results, baseline


async def _regroup() -> list[Group]:
    """The stack's processes now (a restarted component may need a few seconds to show up)."""
    for attempt in range(30):
        try:
            return _stack_groups()
        except (RuntimeError, OSError):
            if attempt == 29:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


def _print_stack_logs(data_dir: Path, components: list[str], tail: int = 25) -> None:
    """devstack's own lines about exits and the end of each component's log (they vanish with the stack)."""
    devstack = data_dir.parent / "devstack.log"
    if devstack.exists():
        lines = [
            ln for ln in devstack.read_text(errors="replace").splitlines() if "exit" in ln or "restart" in ln
        ]
        print("  devstack.log: " + (" | ".join(lines[-5:]) or "(no exits reported)"))
    for name in components:
        log = data_dir / "logs" / f"{name}.log"
        if log.exists():
            body = log.read_text(errors="replace").splitlines()[-tail:]
            print(f"  --- last {len(body)} lines of {log.name} ---")
            for ln in body:
                print(f"    {ln[:300]}")
    print(flush=True)


async def _small_dataset(client: httpx.AsyncClient, base: str) -> str:
    ds = await _call(
        client,
        "POST",
        f"{base}/ds/",
        params={"name": f"bench-warm-{uuid.uuid4().hex[:8]}"},
        files={"file": ("warm.csv", csv_bytes(20), "text/csv")},
    )
    return str(ds["id"])


# ----------------------------------------------------------------------------------------------- PySpur


def _site_packages() -> Path:
    return next(VENV_DIR.glob("lib/python*/site-packages"))


def _pyspur_server_pid() -> int:
    me = os.getpid()
    table = _proc_table()
    ours = set(_descendants(table, me))
    found = [
        p.pid
        for p in table.values()
        if p.pid in ours and "serve" in p.argv and any(a.endswith("/pyspur") for a in p.argv)
    ]
    if not found:  # started in a new session: still our descendant, but be lenient about argv[0]
        found = [p.pid for p in table.values() if p.pid in ours and any("pyspur" in a for a in p.argv)]
    if not found:
        raise RuntimeError("PySpur server process not found")
    return min(found)


def _child_runs(parent_run_id: str) -> int:
    """Child runs recorded so far (read-only look at PySpur's SQLite file; the API pages at 100)."""
    db = PROJECT_DIR.resolve() / "pyspur.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        (n,) = conn.execute("SELECT count(*) FROM runs WHERE parent_run_id = ?", (parent_run_id,)).fetchone()
    return int(n)


def _log_tail(log_path: Path, start: int) -> str:
    if not log_path.exists():
        return ""
    with log_path.open("rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


async def _pyspur_batch(
    client: httpx.AsyncClient,
    api: str,
    workflow_id: str,
    dataset_id: str,
    rows: int,
    timeout_s: float,
    log_path: Path,
    note: str,
) -> BatchResult:
    size = 10
    result = BatchResult("pyspur", rows, size, None, note=note)
    log_start = log_path.stat().st_size if log_path.exists() else 0
    groups = [Group("pyspur server", _pyspur_server_pid(), kind="tree")]
    async with Sampler(groups) as sampler:
        # PySpur runs the whole batch as a background task of this response, and uvicorn reads the next
        # request on that connection only after it: so send it on a connection of its own, kept open.
        starter = httpx.AsyncClient(timeout=120.0, trust_env=False)
        t0 = time.perf_counter()
        parent = await _call(
            starter,
            "POST",
            f"{api}/wf/{workflow_id}/start_batch_run/",
            json={"dataset_id": dataset_id, "mini_batch_size": size},
        )
        result.start_call_ms = (time.perf_counter() - t0) * 1000.0
        children, last_change, status = 0, t0, "?"
        while True:
            try:
                run = await _call(client, "GET", f"{api}/run/{parent['id']}/")
                status = str(run.get("status"))
            except (httpx.HTTPError, RuntimeError) as exc:
                status = f"unknown (GET /run/: {exc!r:.120})"
            now = time.perf_counter()
            n = await asyncio.to_thread(_child_runs, parent["id"])
            if n != children:
                children, last_change = n, now
            if result.first_row_s is None and n > 0:
                result.first_row_s = now - t0
            if status in ("COMPLETED", "FAILED"):
                break
            if now - t0 > timeout_s or now - last_change > PYSPUR_STALL_S:
                break
            if now - last_change > 3.0 and _log_tail(log_path, log_start).count("Traceback"):
                break  # its background task died; the parent will stay PENDING
            await asyncio.sleep(POLL_S)
        wall = time.perf_counter() - t0
        await starter.aclose()
    result.sampler = sampler
    if status != "COMPLETED":
        new_log = _log_tail(log_path, log_start)
        errs = [ln.strip() for ln in new_log.splitlines() if re.match(r"^\s*[\w.]*(Error|Exception)\b", ln)]
        seen = errs[-1][:300] if errs else "no error in the server log"
        why = (
            "time limit"
            if wall > timeout_s
            else "its background task raised"
            if "Traceback" in new_log
            else f"no new child run for {PYSPUR_STALL_S:.0f} s"
        )
        result.verdict = (
            f"did not complete: parent {status} after {wall:.0f} s ({why}), {children}/{rows} child runs; "
            f"server log: {seen}"
        )
        return result
    out = await client.get(f"{api}/of/{parent['output_file_id']}/download/")
    if out.status_code != 200:
        result.verdict = f"WRONG: download -> {out.status_code}: {out.text[:200]}"
        return result
    result.verdict = check_output(out.text, rows, ours=False)
    if result.verdict.startswith("ok"):
        result.wall_s = wall
    return result


async def bench_pyspur_batch(rows: int, timeout_s: float) -> list[BatchResult]:
    results: list[BatchResult] = []
    site = _site_packages()
    out_dir = site / "output_files"
    dataset_file = f"bench_batch_{uuid.uuid4().hex[:8]}.csv"  # PySpur saves it to site-packages/datasets/
    created_dir = False
    try:
        async with (
            pyspur_server() as (base_url, _),
            httpx.AsyncClient(timeout=120.0, trust_env=False) as client,
        ):
            api = f"{base_url}/api"
            log_path = PROJECT_DIR.resolve() / "server.log"
            wf = await _call(
                client,
                "POST",
                f"{api}/wf/",
                json={
                    "name": f"bench-batch-{uuid.uuid4().hex[:8]}",
                    "description": "",
                    "definition": batch_definition(),
                },
            )
            ds = await _call(
                client,
                "POST",
                f"{api}/ds/",
                params={"name": f"bench-batch-{uuid.uuid4().hex[:8]}", "description": ""},
                files={"file": (dataset_file, csv_bytes(rows), "text/csv")},
            )
            if not out_dir.exists():
                _log(f"pyspur: {rows} rows as installed ({out_dir.name}/ missing from site-packages)")
                res = await _pyspur_batch(
                    client, api, wf["id"], ds["id"], rows, timeout_s, log_path, "as installed from PyPI"
                )
                _log(f"  {res.verdict}")
                results.append(res)
                out_dir.mkdir()
                created_dir = True
                note = f"after the bench created {out_dir.relative_to(VENV_DIR)}/"
            else:
                note = f"{out_dir.name}/ already present"
            _log(f"pyspur: {rows} rows ({note})")
            res = await _pyspur_batch(client, api, wf["id"], ds["id"], rows, timeout_s, log_path, note)
            _log(f"  {res.verdict}; wall {_fmt(res.wall_s, '.1f')} s")
            results.append(res)
    finally:
        if created_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
        (site / "datasets" / dataset_file).unlink(missing_ok=True)
    return results


# ------------------------------------------------------------------------------------------- entry point


async def bench_batch(
    rows: int = 10_000,
    sizes: tuple[int, ...] = (10, 25, 50),
    pyspur_rows: int = 1000,
    pyspur_timeout_s: float = 300.0,
) -> None:
    results, baseline = await bench_ours_batch(rows, list(sizes))
    if pyspur_rows:
        try:
            results += await bench_pyspur_batch(pyspur_rows, pyspur_timeout_s)
        except Exception as exc:  # report, do not lose our figures
            results.append(
                BatchResult("pyspur", pyspur_rows, 10, None, verdict=f"did not run: {exc!r}"[:300])
            )
    print_results(results, baseline)
    print_targets(results)
