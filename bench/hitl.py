"""`python -m bench.run --only hitl`: human steps and cancellation, against one fresh `make run` stack.

1. approve -> COMPLETED: input -> approve (HumanInterventionNode) -> output. Each run is started and left to
   pause (untimed); then the time from sending `process_pause_action` APPROVE until `GET /run/{id}/` shows
   COMPLETED (polled every ~5 ms), and the decision call on its own.
2. cancel -> CANCELED while a Python node sleeps: input -> busy (time.sleep(60)). Half the runs are
   cancelled on the fast path (~0.3 s after the task shows RUNNING), half on the slow path (~2 s after);
   the time from sending the cancel until `GET` shows CANCELED, and the final state of task `busy`.
3. many paused runs: start ``n_paused`` runs of the approve graph, wait until all are PAUSED, measure RSS
   and CPU of the worker, the API, the Temporal dev server and PostgreSQL over 20 s of idleness (and the
   same before starting them), then approve them all and wait until all are COMPLETED.

A failed request, a wrong output or a run that does not reach the expected state is printed with its run id
and the response; it is never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.http_load import new_client
from bench.ours import our_stack
from bench.stats import percentile

NAME = "hitl"
POLL_S = 0.005
CONCURRENCY = 16
IDLE_S = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

INPUT_NODE = {
    "id": "input_node",
    "title": "input_node",
    "node_type": "InputNode",
    "config": {"output_schema": {"x": "integer"}},
}


def approve_definition() -> dict[str, Any]:
    return {
        "nodes": [
            INPUT_NODE,
            {
                "id": "approve",
                "title": "approve",
                "node_type": "HumanInterventionNode",
                "config": {"message": "ok?"},
            },
            {
                "id": "output_node",
                "title": "output_node",
                "node_type": "OutputNode",
                "config": {"output_map": {"x": "approve.input_node.x"}},
            },
        ],
        "links": [
            {"source_id": "input_node", "target_id": "approve"},
            {"source_id": "approve", "target_id": "output_node"},
        ],
    }


def busy_definition() -> dict[str, Any]:
    return {
        "nodes": [
            INPUT_NODE,
            {
                "id": "busy",
                "title": "busy",
                "node_type": "PythonFuncNode",
                "config": {"code": "import time\ntime.sleep(60)\nreturn {}", "output_schema": {}},
            },
        ],
        "links": [{"source_id": "input_node", "target_id": "busy"}],
    }


def _log(msg: str) -> None:
    print(f"[bench] {NAME}: {msg}", flush=True)


def _fmt(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50):7.1f} ms  p95 {percentile(values, 95):7.1f} ms  "
        f"max {max(values):7.1f} ms  (n={len(values)})"
    )


class RunFailure(Exception):
    """A request failed or a run did not reach the expected state; the message names the run."""


# --------------------------------------------------------------------------------------------- HTTP helpers


@dataclass
class Api:
    client: httpx.AsyncClient
    base: str

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        resp = await self.client.request(method, f"{self.base}{path}", json=body)
        if resp.status_code != 200:
            raise RunFailure(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        payload: dict[str, Any] = resp.json()
        return payload

    async def create_workflow(self, name: str, definition: dict[str, Any]) -> str:
        wf = await self._call("POST", "/wf/", {"name": name, "definition": definition})
        return str(wf["id"])

    async def start_run(self, workflow_id: str, x: int) -> dict[str, Any]:
        body = {"initial_inputs": {"input_node": {"x": x}}}
        return await self._call("POST", f"/wf/{workflow_id}/start_run/", body)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/run/{run_id}/")

    async def approve(self, run_id: str) -> dict[str, Any]:
        body = {"inputs": {}, "user_id": "bench", "action": "APPROVE"}
        return await self._call("POST", f"/wf/process_pause_action/{run_id}/", body)

    async def cancel(self, run_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/wf/cancel_workflow/{run_id}/")

    async def wait_for(
        self,
        run_id: str,
        done: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float = 30.0,
        interval_s: float = POLL_S,
    ) -> dict[str, Any]:
        """Poll ``GET /run/{id}/`` (first poll at once) until ``done(run)``; RunFailure after ``timeout_s``."""
        deadline = time.perf_counter() + timeout_s
        while True:
            run = await self.get_run(run_id)
            if done(run):
                return run
            if time.perf_counter() > deadline:
                raise RunFailure(
                    f"run {run_id}: not {what} after {timeout_s:.0f} s; last status {run.get('status')}, "
                    f"tasks {_tasks(run)}, error {run.get('error')!r}"
                )
            await asyncio.sleep(interval_s)


def _status_is(*wanted: str) -> Callable[[dict[str, Any]], bool]:
    def check(run: dict[str, Any]) -> bool:
        status = run.get("status")
        if status in wanted:
            return True
        if status in ("COMPLETED", "FAILED", "CANCELED"):
            raise RunFailure(
                f"run {run.get('id')}: ended {status} while waiting for {'/'.join(wanted)}; "
                f"tasks {_tasks(run)}, error {run.get('error')!r}"
            )
        return False

    return check


def _tasks(run: dict[str, Any]) -> dict[str, str]:
    return {str(t.get("node_id")): str(t.get("status")) for t in run.get("tasks") or []}


def _task_running(node_id: str) -> Callable[[dict[str, Any]], bool]:
    def check(run: dict[str, Any]) -> bool:
        if run.get("status") in ("COMPLETED", "FAILED", "CANCELED"):
            raise RunFailure(f"run {run.get('id')}: ended {run.get('status')} before {node_id} ran")
        return _tasks(run).get(node_id) == "RUNNING"

    return check


def _check_output(run: dict[str, Any], x: int) -> None:
    outputs = run.get("outputs") or {}
    got = outputs.get("output_node") if isinstance(outputs, dict) else None
    if got != {"x": x}:
        raise RunFailure(
            f"run {run.get('id')}: expected outputs.output_node == {{'x': {x}}}, got {outputs!r}"
        )


async def _pool(n: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> list[str]:
    """Run ``job(0..n-1)`` with ``concurrency`` in flight; returns the error messages (one per failed job)."""
    errors: list[str] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < n:
            i = next_index
            next_index += 1
            try:
                await job(i)
            except (RunFailure, httpx.HTTPError) as exc:
                errors.append(f"#{i}: {exc!r}" if isinstance(exc, httpx.HTTPError) else f"#{i}: {exc}")

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, n)):
            tg.create_task(worker())
    return errors


def _report_errors(label: str, errors: list[str], show: int = 5) -> None:
    if not errors:
        return
    print(f"  !! {label}: {len(errors)} failures")
    for line in errors[:show]:
        print(f"     {line}")
    if len(errors) > show:
        print(f"     ... and {len(errors) - show} more")


# -------------------------------------------------------------------------------------- 1. approve latency


async def bench_approve(api: Api, workflow_id: str, n: int) -> None:
    _log(f"approve -> COMPLETED: {n} runs, one at a time")
    to_completed: list[float] = []
    decide_call: list[float] = []
    slowest = (0.0, "", 0)  # (ms, run id, run number)
    errors: list[str] = []
    for i in range(n):
        x = i + 1
        run_id = "?"
        try:
            run_id = str((await api.start_run(workflow_id, x))["id"])
            await api.wait_for(run_id, _status_is("PAUSED"), "PAUSED")
            t0 = time.perf_counter()
            await api.approve(run_id)
            t1 = time.perf_counter()
            run = await api.wait_for(run_id, _status_is("COMPLETED"), "COMPLETED")
            t2 = time.perf_counter()
            _check_output(run, x)
            decide_call.append((t1 - t0) * 1000.0)
            to_completed.append((t2 - t0) * 1000.0)
            slowest = max(slowest, (to_completed[-1], run_id, x))
        except (RunFailure, httpx.HTTPError) as exc:
            errors.append(f"x={x} run {run_id}: {exc!r}")
    print(f"\n== {NAME} 1. approve -> COMPLETED (input -> HumanInterventionNode -> output), sequential")
    print(f"  APPROVE sent -> GET shows COMPLETED : {_fmt(to_completed)}")
    p50_call = percentile(decide_call, 50)
    print(
        f"  process_pause_action call alone     : p50 {p50_call:7.1f} ms  (max {max(decide_call or [0]):.1f} ms)"
    )
    if slowest[1]:
        print(
            f"  slowest                             : run #{slowest[2]} of {n} ({slowest[1]}), {slowest[0]:.1f} ms"
        )
    p50 = percentile(to_completed, 50)
    print(f"  target p50 < 100 ms                 : {'met' if p50 < 100 else 'NOT met'} ({p50:.1f} ms)")
    _report_errors("approve runs", errors)
    print(flush=True)


# --------------------------------------------------------------------------------------- 2. cancel latency


@dataclass
class CancelSample:
    phase: str
    run_id: str
    latency_ms: float
    call_ms: float
    call_status: str
    busy_status: str
    busy_settled_after_ms: float | None = None


async def _cancel_one(api: Api, workflow_id: str, x: int, phase: str, delay_s: float) -> CancelSample:
    run_id = str((await api.start_run(workflow_id, x))["id"])
    await api.wait_for(run_id, _task_running("busy"), "busy RUNNING")
    running_at = time.perf_counter()
    await asyncio.sleep(max(0.0, running_at + delay_s - time.perf_counter()))
    t0 = time.perf_counter()
    answered = await api.cancel(run_id)
    t1 = time.perf_counter()
    run = await api.wait_for(run_id, _status_is("CANCELED"), "CANCELED")
    t2 = time.perf_counter()
    busy = _tasks(run).get("busy", "missing")
    sample = CancelSample(
        phase, run_id, (t2 - t0) * 1000.0, (t1 - t0) * 1000.0, str(answered.get("status")), busy
    )
    if busy != "CANCELED":  # see whether (and when) it gets there
        with contextlib.suppress(RunFailure):
            settled = await api.wait_for(
                run_id, lambda r: _tasks(r).get("busy") == "CANCELED", "busy CANCELED", 5.0, 0.05
            )
            sample.busy_settled_after_ms = (time.perf_counter() - t0) * 1000.0
            sample.busy_status = f"{busy} -> {_tasks(settled).get('busy')}"
    return sample


async def bench_cancel(api: Api, workflow_id: str, n: int) -> None:
    phases = [("fast path (+0.3 s)", 0.3)] * (n - n // 2) + [("slow path (+2 s)", 2.0)] * (n // 2)
    _log(f"cancel -> CANCELED: {n} runs, one at a time ({n - n // 2} fast path, {n // 2} slow path)")
    samples: list[CancelSample] = []
    errors: list[str] = []
    for i, (phase, delay) in enumerate(phases):
        try:
            samples.append(await _cancel_one(api, workflow_id, 1000 + i, phase, delay))
        except (RunFailure, httpx.HTTPError) as exc:
            errors.append(f"{phase}: {exc!r}")
    print(f"\n== {NAME} 2. cancel -> CANCELED while PythonFuncNode `busy` sleeps (time.sleep(60))")
    for phase, _ in dict.fromkeys(phases):
        got = [s for s in samples if s.phase == phase]
        lat = [s.latency_ms for s in got]
        call = [s.call_ms for s in got]
        worst = max(lat or [0.0])
        print(
            f"  {phase:<19}: cancel sent -> GET CANCELED p50 {percentile(lat, 50):7.1f} ms  max {worst:7.1f} ms"
            f"  (n={len(got)}; cancel call p50 {percentile(call, 50):.1f} ms)"
            f"  target < 2 s: {'met' if got and worst < 2000 else 'NOT met'}"
        )
    bad = [s for s in samples if s.busy_status != "CANCELED"]
    print(
        f"  task `busy` CANCELED at the moment the run showed CANCELED: {len(samples) - len(bad)}/{len(samples)}"
    )
    for s in samples:
        print(
            f"     {s.phase:<19} run {s.run_id}: {s.latency_ms:7.1f} ms, cancel call answered status "
            f"{s.call_status}, task busy {s.busy_status}"
            + (f" (after {s.busy_settled_after_ms:.0f} ms)" if s.busy_settled_after_ms is not None else "")
        )
    _report_errors("cancel runs", errors)
    print(flush=True)


# ---------------------------------------------------------------------------------- 3. processes and usage


@dataclass
class Proc:
    pid: int
    ppid: int
    comm: str
    argv: list[str]


def _proc_table() -> dict[int, Proc]:
    table: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        table[int(entry.name)] = Proc(int(entry.name), ppid, comm, [a for a in argv if a])
    return table


def _descendants(table: dict[int, Proc], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


@dataclass
class StackProcs:
    devstack: int
    data_dir: str
    groups: dict[str, list[int]] = field(default_factory=dict)


def find_stack_processes() -> StackProcs:
    """The devstack child of this process, its DATA_DIR, and the pids of each component of that stack.

    worker / api / temporal: direct children of devstack (matched by command line; temporal's names the
    data dir). postgres: the postmaster whose command line names the data dir, plus all its descendants.
    """
    table = _proc_table()
    me = os.getpid()
    devstacks = [p for p in table.values() if p.ppid == me and any(a.endswith("devstack.py") for a in p.argv)]
    if len(devstacks) != 1:
        raise RuntimeError(f"expected one devstack.py child of pid {me}, found {devstacks}")
    dev = devstacks[0]
    environ = Path(f"/proc/{dev.pid}/environ").read_bytes().decode(errors="replace").split("\0")
    data_dir = next((e.split("=", 1)[1] for e in environ if e.startswith("DATA_DIR=")), "")
    if not data_dir:
        raise RuntimeError(f"devstack pid {dev.pid} has no DATA_DIR in its environment")
    kids = [table[pid] for pid in _descendants(table, dev.pid) if table[pid].ppid == dev.pid]

    def one(label: str, match: Callable[[Proc], bool]) -> list[int]:
        found = [p.pid for p in kids if match(p)]
        if len(found) != 1:
            raise RuntimeError(f"expected one {label} under devstack {dev.pid}, found {found}")
        return found

    groups = {
        "worker (worker.py)": one("worker", lambda p: "worker.py" in p.argv),
        "api (uvicorn)": one("api", lambda p: "api.app:create_app" in p.argv),
        "temporal start-dev": one(
            "temporal", lambda p: "start-dev" in p.argv and any(data_dir in a for a in p.argv)
        ),
    }
    postmasters = [
        p.pid
        for p in table.values()
        if p.comm == "postgres"
        and p.argv
        and p.argv[0].endswith("postgres")
        and any(data_dir in a for a in p.argv)
    ]
    if len(postmasters) != 1:
        raise RuntimeError(f"expected one postmaster naming {data_dir}, found {postmasters}")
    groups["postgres (all)"] = [postmasters[0], *_descendants(table, postmasters[0])]
    return StackProcs(dev.pid, data_dir, groups)


def _refresh_postgres(procs: StackProcs) -> None:
    """Backends come and go; re-read the postmaster's descendants."""
    postmaster = procs.groups["postgres (all)"][0]
    procs.groups["postgres (all)"] = [postmaster, *_descendants(_proc_table(), postmaster)]


def _jiffies(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (PostgreSQL's shared buffers) split among their users."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


@dataclass
class Usage:
    rss_mb: dict[str, float]
    pss_mb: dict[str, float]
    cpu_pct: dict[str, float]  # % of one core over the window
    nprocs: dict[str, int]
    worker_subtree: tuple[int, float]  # (descendant processes of the worker, their RSS MB)


async def idle_usage(procs: StackProcs, seconds: float = IDLE_S) -> Usage:
    """RSS at the end and CPU (utime+stime) over ``seconds`` of no requests, per component."""
    _refresh_postgres(procs)
    start = {label: {pid: _jiffies(pid) for pid in pids} for label, pids in procs.groups.items()}
    await asyncio.sleep(seconds)
    _refresh_postgres(procs)
    cpu: dict[str, float] = {}
    for label, pids in procs.groups.items():
        ticks = 0
        for pid in pids:
            now = _jiffies(pid)
            if now is None:
                continue
            before = start[label].get(pid)
            ticks += now - (before or 0)  # a process born in the window counts whole
        cpu[label] = 100.0 * ticks / CLK_TCK / seconds
    rss = {label: sum(_rss_kb(pid) for pid in pids) / 1024.0 for label, pids in procs.groups.items()}
    pss = {label: sum(_pss_kb(pid) for pid in pids) / 1024.0 for label, pids in procs.groups.items()}
    worker_pid = procs.groups["worker (worker.py)"][0]
    sub = _descendants(_proc_table(), worker_pid)
    return Usage(
        rss,
        pss,
        cpu,
        {label: len(pids) for label, pids in procs.groups.items()},
        (len(sub), sum(_rss_kb(pid) for pid in sub) / 1024.0),
    )


def _print_usage(title: str, usage: Usage, base: Usage | None, n_runs: int) -> None:
    """RSS sums count shared pages once per process (PostgreSQL!); PSS splits them, so PSS sums are fair."""
    print(f"  {title}")
    for label in usage.rss_mb:
        line = (
            f"    {label:<20} RSS {usage.rss_mb[label]:7.1f} MB  PSS {usage.pss_mb[label]:7.1f} MB"
            f"  CPU {usage.cpu_pct[label]:5.1f} % of a core  ({usage.nprocs[label]:>2} proc)"
        )
        if base is not None:
            d_rss = usage.rss_mb[label] - base.rss_mb[label]
            d_pss = usage.pss_mb[label] - base.pss_mb[label]
            line += (
                f"  dRSS {d_rss:+7.1f} MB ({d_rss * 1024.0 / n_runs:+6.1f} KB/run)"
                f"  dPSS {d_pss:+7.1f} MB ({d_pss * 1024.0 / n_runs:+6.1f} KB/run)"
                f"  dCPU {usage.cpu_pct[label] - base.cpu_pct[label]:+5.1f} %"
            )
        print(line)
    total_rss, total_cpu = sum(usage.rss_mb.values()), sum(usage.cpu_pct.values())
    total_pss = sum(usage.pss_mb.values())
    print(
        f"    {'total':<20} RSS {total_rss:7.1f} MB  PSS {total_pss:7.1f} MB  CPU {total_cpu:5.1f} % of a core"
    )
    n_sub, sub_rss = usage.worker_subtree
    print(f"    (worker's descendant processes (sandbox): {n_sub}, RSS {sub_rss:.1f} MB; not in the rows)")


async def _sweep(
    api: Api, run_ids: Iterable[str], wanted: str, timeout_s: float
) -> tuple[float, dict[str, str]]:
    """GET every run until all show ``wanted``; returns (seconds, {run_id: last status} of those that did not)."""
    pending = dict.fromkeys(run_ids, "?")
    t0 = time.perf_counter()
    while pending and time.perf_counter() - t0 < timeout_s:
        ids = list(pending)

        async def check(i: int, ids: list[str] = ids) -> None:
            run = await api.get_run(ids[i])
            if run.get("status") == wanted:
                pending.pop(ids[i], None)
            else:
                pending[ids[i]] = f"{run.get('status')} tasks {_tasks(run)} error {run.get('error')!r}"

        errors = await _pool(len(ids), CONCURRENCY, check)
        _report_errors(f"GET while waiting for {wanted}", errors, show=3)
        if pending:
            await asyncio.sleep(0.2)
    return time.perf_counter() - t0, pending


async def bench_paused(api: Api, workflow_id: str, n: int) -> None:
    procs = find_stack_processes()
    _log(
        f"stack processes (devstack {procs.devstack}, data {procs.data_dir}): "
        + ", ".join(
            f"{k}: {v[:1]}{'+' + str(len(v) - 1) if len(v) > 1 else ''}" for k, v in procs.groups.items()
        )
    )
    await asyncio.sleep(2.0)  # let the previous parts settle
    _log(f"baseline: {IDLE_S:.0f} s idle before starting {n} runs")
    before = await idle_usage(procs)

    _log(f"starting {n} runs of the approve graph at concurrency {CONCURRENCY}")
    run_ids: list[str | None] = [None] * n

    start_ms: list[float] = []

    async def start(i: int) -> None:
        t = time.perf_counter()
        run_ids[i] = str((await api.start_run(workflow_id, i + 1))["id"])
        start_ms.append((time.perf_counter() - t) * 1000.0)

    t0 = time.perf_counter()
    start_errors = await _pool(n, CONCURRENCY, start)
    started_s = time.perf_counter() - t0
    started = [r for r in run_ids if r is not None]
    paused_s, not_paused = await _sweep(api, started, "PAUSED", 600.0)
    all_paused_s = started_s + paused_s

    _log(f"{len(started) - len(not_paused)} runs paused; {IDLE_S:.0f} s idle")
    during = await idle_usage(procs)

    approve_ids = [r for r in started if r not in not_paused]
    _log(f"approving {len(approve_ids)} runs at concurrency {CONCURRENCY}")

    approve_ms: list[float] = []

    async def approve(i: int) -> None:
        t = time.perf_counter()
        await api.approve(approve_ids[i])
        approve_ms.append((time.perf_counter() - t) * 1000.0)

    t1 = time.perf_counter()
    approve_errors = await _pool(len(approve_ids), CONCURRENCY, approve)
    approved_s = time.perf_counter() - t1
    completed_s, not_completed = await _sweep(api, approve_ids, "COMPLETED", 600.0)
    wrong: list[str] = []
    sample = approve_ids[:: max(1, len(approve_ids) // 20)]  # spot-check outputs of ~20 runs
    for run_id in sample:
        if run_id in not_completed:
            continue
        run = await api.get_run(run_id)
        try:
            _check_output(run, run_ids.index(run_id) + 1)
        except RunFailure as exc:
            wrong.append(str(exc))

    print(f"\n== {NAME} 3. {n} runs sitting paused (input -> HumanInterventionNode -> output)")
    print(
        f"  start_run x{n} at concurrency {CONCURRENCY}: {started_s:.1f} s ({len(started) / started_s:.0f}/s); "
        f"all PAUSED {all_paused_s:.1f} s after the first start_run"
    )
    print(f"    start_run call under load: {_fmt(start_ms)}")
    _report_errors("start_run", start_errors)
    if not_paused:
        print(f"  !! {len(not_paused)} runs not PAUSED after 600 s; e.g. {list(not_paused.items())[:3]}")
    _print_usage(f"before ({IDLE_S:.0f} s idle, after parts 1-2):", before, None, n)
    _print_usage(
        f"with {len(approve_ids)} runs paused ({IDLE_S:.0f} s idle):",
        during,
        before,
        max(1, len(approve_ids)),
    )
    print(
        f"  approve x{len(approve_ids)} at concurrency {CONCURRENCY}: calls done in {approved_s:.1f} s; "
        f"all COMPLETED {completed_s + approved_s:.1f} s after the first APPROVE"
    )
    print(f"    process_pause_action call under load: {_fmt(approve_ms)}")
    _report_errors("process_pause_action", approve_errors)
    if not_completed:
        print(
            f"  !! {len(not_completed)} runs not COMPLETED after 600 s; e.g. {list(not_completed.items())[:3]}"
        )
    print(f"  outputs spot-checked: {len(sample) - len(wrong)}/{len(sample)} correct")
    for line in wrong[:3]:
        print(f"     {line}")
    print(flush=True)


# ------------------------------------------------------------------------------------------------ entry point


async def bench_hitl(n_approve: int = 50, n_cancel: int = 10, n_paused: int = 1000) -> None:
    """All three parts against one fresh stack; prints the figures."""
    async with our_stack() as (base, key), new_client(CONCURRENCY + 4) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        api = Api(client, base)
        approve_wf = await api.create_workflow("bench-hitl-approve", approve_definition())
        busy_wf = await api.create_workflow("bench-hitl-busy", busy_definition())
        if n_approve:
            await bench_approve(api, approve_wf, n_approve)
        if n_cancel:
            await bench_cancel(api, busy_wf, n_cancel)
        if n_paused:
            await bench_paused(api, approve_wf, n_paused)
