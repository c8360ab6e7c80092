"""`make bench`: the graph input -> PythonFunc -> output, three ways, on this machine, in one run.

    python -m bench.run [--only floor,ours,pyspur] [--n-seq 100 --n-conc 300 --conc 16] [--levers]
    python -m bench.run --only hitl [--n-paused 1000]
    python -m bench.run --only batch [--batch-rows 10000 --batch-sizes 10,25,50 --pyspur-batch-rows 1000]
    python -m bench.run --only v1 [--n-seq 100]
    python -m bench.run --only llm [--n-seq 100 --llm-conc 1000 --llm-hold 120]
    python -m bench.run --only agent [--n-seq 100]

1. floor: a bare Temporal workflow doing the same work through one activity (no API, no database);
   with and without eager start, on a dev server tuned like ours;
2. ours: `POST /wf/{id}/run/` over HTTP against a fresh `make run` stack;
3. PySpur 0.1.18 through its own `/api/wf/{id}/run/` (SQLite), installed into bench/.pyspur-venv.
`--levers` adds rows for our service with single levers switched off, to show what each buys.
`hitl` (not in the default set): human-step and cancel latencies and the cost of runs sitting paused
(bench/hitl.py); it prints its own figures.
`batch` (in the default set): a 10,000-row CSV through the same graph as one batch run of ours (once per
mini-batch size, on one fresh stack), rows/s and peak memory of the API, worker, Temporal and PostgreSQL,
then PySpur 0.1.18's batch on 1,000 rows (bench/batch.py); it prints its own figures.
`tracing` (not in the default set): ours with tracing off, then exported to a local OTLP sink (bench/tracing.py).
`v1` (in the default set): through the ksapi client, create run -> start -> poll until COMPLETED
for the default graph, beside the same graph through `POST /wf/{id}/run/` (bench/v1.py).
`dashboard` (not in the default set): PySpur's dashboard with 1,000 workflows and 10,000 runs stored, its API
calls and its time to render in Chromium (bench/dashboard.py); it prints its own figures.
`cpu` (not in the default set): CPU ms per blocking run of the API, worker, Temporal and PostgreSQL, with
PostgreSQL transactions per run and one run's Temporal history (bench/cpu.py); with `--levers`, per lever.
`llm` (not in the default set): input -> SingleLLMCallNode -> output against an OpenAI-compatible stub
answering after 200 ms (overhead) and 2 s (runs started at once) (bench/llm.py); it prints its own figures.
`agent` (not in the default set): a 10-iteration AgentNode loop with a Python tool against the stub answering
after 100 ms; orchestration time per iteration (bench/agent.py); it prints its own figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.agent import bench_agent
from bench.batch import bench_batch
from bench.cpu import bench_cpu, print_cpu
from bench.dashboard import bench_dashboard
from bench.hitl import bench_hitl
from bench.llm import bench_llm
from bench.ours import bench_ours
from bench.run_partial import bench_floor, bench_pyspur
from bench.stats import Measurement, print_table
from bench.tracing import bench_tracing
from bench.v1 import bench_v1

PARTS = ("floor", "ours", "pyspur", "hitl", "batch", "v1", "dashboard", "llm", "tracing", "cpu", "agent")
DEFAULT_PARTS = ("floor", "ours", "pyspur", "batch", "v1")
LEVERS = {
    "no fast path (Python node as a regular activity)": {"PYTHON_FAST_PATH_SECONDS": "0"},
    "no embedded worker (no eager start)": {"API_EMBEDDED_WORKER": "false"},
    "sandboxed workflow runner": {"WORKER_SANDBOXED_WORKFLOWS": "true"},
    "blocking run answered by Temporal's long poll only": {"RUN_BLOCKING_ANSWER_IN_PROCESS": "false"},
}


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(DEFAULT_PARTS), help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--n-seq", type=int, default=100)
    parser.add_argument("--n-conc", type=int, default=300)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--levers", action="store_true", help="also measure ours with each lever off")
    parser.add_argument("--n-paused", type=int, default=1000, help="hitl: runs left paused at once")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="batch: CSV rows for ours")
    parser.add_argument("--batch-sizes", default="10,25,50", help="batch: mini_batch_size values for ours")
    parser.add_argument(
        "--pyspur-batch-rows", type=int, default=1000, help="batch: rows for PySpur (0: skip)"
    )
    parser.add_argument(
        "--pyspur-batch-timeout", type=float, default=300.0, help="batch: PySpur time limit, s"
    )
    parser.add_argument("--llm-conc", type=int, default=1000, help="llm: runs started at once (0: skip)")
    parser.add_argument(
        "--llm-hold",
        type=float,
        default=120.0,
        help="llm: provider latency, s, of the second burst (0: skip)",
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    rows: list[Measurement] = []
    if "floor" in parts:
        rows += await bench_floor(args.n_seq, args.n_conc, args.conc, args.warmup)
    if "ours" in parts:
        rows += await bench_ours(args.n_seq, args.n_conc, args.conc, args.warmup)
        if args.levers:
            for label, env in LEVERS.items():
                lever_rows = await bench_ours(args.n_seq, args.n_conc, args.conc, args.warmup, **env)
                for row in lever_rows:
                    row.name, row.note = "ours-lever", label
                rows += lever_rows
    if "cpu" in parts:
        cpu_rows = [await bench_cpu(args.n_seq, args.warmup)]
        if args.levers:
            for label, lever_env in LEVERS.items():
                cpu_row = await bench_cpu(args.n_seq, args.warmup, **lever_env)
                cpu_row.note = label
                cpu_rows.append(cpu_row)
        print_cpu(cpu_rows)
    if "v1" in parts:
        rows += await bench_v1(args.n_seq, args.warmup)
    if "tracing" in parts:
        rows += await bench_tracing(args.n_seq, args.n_conc, args.conc, args.warmup)
    if "pyspur" in parts:
        rows += await bench_pyspur(args.n_seq, args.n_conc, args.conc, args.warmup)
    if rows:
        print()
        print_table(rows)
    if "hitl" in parts:
        await bench_hitl(n_paused=args.n_paused)
    if "dashboard" in parts:
        await bench_dashboard()
    if "llm" in parts:
        await bench_llm(args.n_seq, args.llm_conc, args.warmup, args.llm_hold)
    if "agent" in parts:
        await bench_agent(args.n_seq, args.warmup)
    if "batch" in parts:
        sizes = tuple(int(v) for v in args.batch_sizes.split(",") if v.strip())
        await bench_batch(args.batch_rows, sizes, args.pyspur_batch_rows, args.pyspur_batch_timeout)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
