"""`python -m bench.run --only tracing`: the blocking run with tracing exported to a local OTLP sink vs off.

Both stacks run at once and take turns (rounds of runs, sequential then at the given concurrency,
alternating which goes first), so a shared machine's background load falls on both alike. Besides latency it prints the CPU time per
run of each stack's processes (API, worker, Temporal, PostgreSQL, from /proc), which the load of
other programs does not disturb the way it does wall-clock time.

The sink is a gRPC OTLP trace receiver in this process that counts the spans it is sent and drops
them, so the figure is the cost of recording and exporting, not of a collector's storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.http_load import (
    Send,
    concurrent,
    create_workflow,
    make_run_sender,
    new_client,
    sequential,
    verify_run,
)
from bench.ours import our_stack
from bench.ports import free_port
from bench.stats import OURS, Measurement

_ROUNDS = 10
_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


class _Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self.names: Counter[str] = Counter()

    async def Export(self, request, _context):  # type: ignore[no-untyped-def]
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                self.spans += len(ss.spans)
                self.names.update(s.name for s in ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, CPU ticks incl. reaped children, command line) for our processes."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            rest = raw[raw.rindex(")") + 2 :].split()
            table[int(entry.name)] = (int(rest[1]), sum(int(v) for v in rest[11:15]), cmd)
    return table


def _role(cmd: str) -> str:
    for needle, role in (("uvicorn", "api"), ("worker.py", "worker"), ("temporal", "temporal")):
        if needle in cmd:
            return role
    return "postgres"


def _stack_cpu_ms(root: int) -> dict[str, float]:
    """CPU milliseconds so far of each part of one devstack (the subtree of each of its children)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for top in children.get(root, []):
        role, stack, ticks = _role(table[top][2]), [top], 0
        while stack:
            pid = stack.pop()
            ticks += table[pid][1]
            stack.extend(children.get(pid, []))
        out[role] = out.get(role, 0.0) + ticks * _TICK_MS
    return out


@dataclass
class _Leg:
    """One arm's runs at one concurrency, summed over its rounds."""

    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)
    runs: int = 0
    rounds: int = 0  # each with one unmeasured run first


@dataclass
class _Arm:
    label: str
    base: str
    key: str
    root: int
    run_url: str = ""
    legs: dict[int, _Leg] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def sender(self, conc: int) -> AsyncIterator[Send]:
        """A fresh client per round: kept-alive connections idle through the other arm's round
        outlive the server's keep-alive timeout, and reusing one as it closes fails the request."""
        async with new_client(conc) as client:
            client.headers["Authorization"] = f"Bearer {self.key}"
            yield make_run_sender(client, self.run_url)


async def _prepare(arm: _Arm, warmup: int) -> None:
    async with new_client() as client:
        client.headers["Authorization"] = f"Bearer {arm.key}"
        workflow_id = await create_workflow(client, arm.base)
        await verify_run(client, arm.base, workflow_id)
    arm.run_url = f"{arm.base}/wf/{workflow_id}/run/"
    async with arm.sender(1) as send:
        await sequential(send, 0, warmup)


async def _round(arm: _Arm, n: int, conc: int) -> None:
    leg = arm.legs.setdefault(conc, _Leg())
    async with arm.sender(conc) as send:
        await send(0)  # the connection, outside the measurement
        before, start = _stack_cpu_ms(arm.root), time.perf_counter()
        if conc == 1:
            leg.latencies += await sequential(send, n, warmup=0)
        else:
            leg.latencies += (await concurrent(send, n, conc, warmup=0))[0]
    leg.wall_s += time.perf_counter() - start
    after = _stack_cpu_ms(arm.root)
    for role, ms in after.items():
        leg.cpu_ms[role] = leg.cpu_ms.get(role, 0.0) + ms - before.get(role, 0.0)
    leg.runs += n
    leg.rounds += 1


def _report(arm: _Arm, conc: int) -> str:
    leg = arm.legs[conc]
    per_run = {role: ms / leg.runs for role, ms in sorted(leg.cpu_ms.items())}
    parts = " ".join(f"{role} {ms:.1f}" for role, ms in per_run.items())
    return (
        f"[bench] tracing {arm.label} at concurrency {conc}: p50 {statistics.median(leg.latencies):.1f} ms, "
        f"{leg.runs / leg.wall_s:.1f} runs/s over {leg.runs} runs; "
        f"CPU ms/run {sum(per_run.values()):.1f} ({parts})"
    )


async def _interleaved(off: _Arm, on: _Arm, n: int, conc: int) -> None:
    """`n` runs per arm in rounds, alternating which arm goes first."""
    per_round = max(conc, n // _ROUNDS)
    for r in range(max(1, n // per_round)):
        for arm in (off, on) if r % 2 == 0 else (on, off):
            await _round(arm, per_round, conc)


async def bench_tracing(n_seq: int, n_conc: int, conc: int, warmup: int) -> list[Measurement]:
    sink = _Sink()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        async with (
            our_stack() as (off_base, off_key),
            our_stack(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint) as (on_base, on_key),
        ):
            off = _Arm("off", off_base, off_key, _devstack_pid(off_base))
            on = _Arm("on", on_base, on_key, _devstack_pid(on_base))
            await _prepare(off, warmup)
            await _prepare(on, warmup)
            spans_before = sink.spans
            names_before = sink.names.copy()
            await _interleaved(off, on, n_seq, 1)
            await asyncio.sleep(6)  # the batch processor's 5 s schedule: the last spans reach the sink
            print(_report(off, 1), flush=True)
            print(_report(on, 1), flush=True)
            spans_per_run = (sink.spans - spans_before) / (on.legs[1].runs + on.legs[1].rounds)
            print(f"[bench] OTLP sink received {spans_per_run:.1f} spans per sequential run", flush=True)
            runs = on.legs[1].runs + on.legs[1].rounds
            names = ", ".join(
                f"{name} {n / runs:.1f}" for name, n in (sink.names - names_before).most_common()
            )
            print(f"[bench] spans per run by name: {names}", flush=True)
            await _interleaved(off, on, n_conc, conc)
            print(_report(off, conc), flush=True)
            print(_report(on, conc), flush=True)
            rows = []
            for arm in (off, on):
                note = "tracing exported to a local OTLP sink" if arm is on else "tracing off"
                for conc_, leg in sorted(arm.legs.items()):
                    rows.append(Measurement(OURS, leg.latencies, leg.wall_s, leg.runs, conc_, note))
    finally:
        await server.stop(None)
    return rows


def _devstack_pid(base: str) -> int:
    """The devstack process serving `base` (its environment names the API's port)."""
    port = base.rsplit(":", 1)[1].encode()
    for pid, (_, _, cmd) in _proc_table().items():
        if "devstack.py" in cmd:
            with contextlib.suppress(OSError):
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if b"PORT=" + port in env:
                    return pid
    raise RuntimeError(f"no devstack process found for {base}")
