"""Run the parts of the benchmark that do not need our service: the Temporal floor and PySpur 0.1.18.

    python -m bench.run_partial --only floor,pyspur [--n-seq 100 --n-conc 300 --conc 16]

``floor`` runs both the regular and the eager-start variant against a throwaway dev server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench.floor import run_floor
from bench.http_load import DEFAULT_WARMUP, make_pyspur_sender, measure, new_client
from bench.pyspur import PROJECT_DIR, pyspur_server
from bench.stats import PYSPUR, Measurement, print_table
from bench.temporal_dev import temporal_dev_server

PARTS = ("floor", "pyspur")


def _log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


async def bench_floor(n_seq: int, n_conc: int, conc: int, warmup: int) -> list[Measurement]:
    rows: list[Measurement] = []
    async with temporal_dev_server() as address:
        for eager in (False, True):
            _log(f"floor eager={eager}: {n_seq} sequential, {n_conc} at concurrency {conc}")
            rows.extend(await run_floor(address, n_seq, n_conc, conc, eager=eager, warmup=warmup))
    return rows


async def bench_pyspur(
    n_seq: int, n_conc: int, conc: int, warmup: int, project_dir: Path = PROJECT_DIR
) -> list[Measurement]:
    """PySpur 0.1.18. Its SQLAlchemy pool (5 + 10 overflow) is smaller than 16 in-flight blocking runs, and the
    16th checkout blocks its only event loop for 30 s, then answers 500; such failures are counted (``err``)
    and excluded from throughput rather than aborting the comparison."""
    async with pyspur_server(project_dir) as (base_url, workflow_id), new_client(conc) as client:
        _log(f"pyspur: {n_seq} sequential, {n_conc} at concurrency {conc}")
        send = make_pyspur_sender(client, base_url, workflow_id)
        note = "0.1.18 /api/wf/{id}/run/"
        seq, par = await measure(PYSPUR, send, n_seq, n_conc, conc, warmup, note, tolerate_errors=True)
    return [seq, par]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--n-seq", type=int, default=100, help="sequential runs (latency)")
    parser.add_argument("--n-conc", type=int, default=300, help="runs for the throughput phase")
    parser.add_argument("--conc", type=int, default=16, help="concurrency of the throughput phase")
    parser.add_argument(
        "--pyspur-project-dir",
        type=Path,
        default=PROJECT_DIR,
        help="PySpur project dir (holds its SQLite db)",
    )
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed warm-up runs")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    return args


async def main(argv: list[str]) -> None:
    args = parse_args(argv)
    rows: list[Measurement] = []
    if "floor" in args.parts:
        rows += await bench_floor(args.n_seq, args.n_conc, args.conc, args.warmup)
    if "pyspur" in args.parts:
        rows += await bench_pyspur(args.n_seq, args.n_conc, args.conc, args.warmup, args.pyspur_project_dir)
    print()
    print_table(rows)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
