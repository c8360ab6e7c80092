"""`python -m soak --seconds N --seed S` (`make soak`): start the deployment, drive the mixed load with
the chaos loop for N seconds, bring everything back, let the runs settle, check the invariants, print
the summary; exit 1 on any violation."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench.ports import free_port
from db.session import make_engine, make_session_factory
from soak import checks
from soak.chaos import chaos
from soak.checks import Fault, Violation
from soak.deployment import ROOT, Deployment
from soak.load import Load
from soak.recorder import Recorder

log = logging.getLogger("soak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the load and the chaos last")
    parser.add_argument("--seed", type=int, default=1, help="seeds the load's choices and the chaos")
    parser.add_argument("--users", type=int, default=6, help="concurrent load users")
    parser.add_argument(
        "--settle-seconds", type=float, default=90.0, help="longest wait for open runs to end"
    )
    parser.add_argument("--fault-gap", type=float, nargs=2, default=(3.0, 8.0), help="seconds between faults")
    parser.add_argument("--report", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[soak %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "pgserver", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pgserver's socket lives in its data directory: keep the path short (sun_path is 108 bytes).
    tmp = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    stub_port = free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "soak.flaky_llm", str(stub_port), str(args.seed)],
        cwd=ROOT,
        stdout=(tmp / "llm-stub.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    dep = Deployment(tmp, f"http://127.0.0.1:{stub_port}/v1")
    try:
        t_start = time.monotonic()
        dep.start()
        log.info("deployment up in %.0f s (data and logs in %s)", time.monotonic() - t_start, tmp)
        code = asyncio.run(_drive(args, dep, f"http://127.0.0.1:{stub_port}"))
    finally:
        dep.stop()
        stub.terminate()
        stub.wait(10)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(code)


async def _drive(args: argparse.Namespace, dep: Deployment, stub: str) -> int:
    rng = random.Random(args.seed)
    engine = make_engine(dep.database_url, pool_size=2)
    sessions = make_session_factory(engine)
    key = await _tenant_key(dep.database_url)
    await _healthy(dep.api_bases)
    rec = Recorder(dep.api_bases, key, rng)
    load = Load(rec)
    faults: list[Fault] = []
    try:
        await load.setup()
        until = time.time() + args.seconds
        log.info("load and chaos for %.0f s (seed %d)", args.seconds, args.seed)
        users = [load.user(until) for _ in range(args.users)]
        await asyncio.gather(
            *users, chaos(dep, random.Random(args.seed + 1), until, faults, tuple(args.fault_gap))
        )
        revived = await asyncio.to_thread(dep.ensure_all_running)
        if revived:
            log.info("revived %s", revived)
        await _healthy(dep.api_bases)
        waited = await checks.settle(sessions, args.settle_seconds)
        log.info("settled in %.0f s; checking", waited)
        client = await Client.connect(f"127.0.0.1:{dep.temporal_port}")
        runs = await checks.stored_runs(sessions)
        violations = await checks.check_runs(sessions, client, runs)
        statuses = checks.run_ids(runs)
        for run_id, tracked in load.runs.items():
            if tracked.expect is not None and statuses.get(run_id) not in tracked.expect | {"PAUSED"}:
                violations.append(
                    Violation(
                        "outcome",
                        run_id,
                        f"{tracked.kind} ended {statuses.get(run_id)}, expected {sorted(tracked.expect)}",
                    )
                )
        violations += [Violation("hostile_refused", "hostile", h) for h in load.hostile_accepted]
        async with httpx.AsyncClient() as http:
            calls = (await http.get(f"{stub}/_calls")).json()
        llm_violations, excused = checks.check_llm(calls, load.llm_tokens, statuses, faults)
        violations += llm_violations
        violations += checks.check_http(rec.log, faults)
        summary = _summary(args, load, runs, faults, rec, violations, excused, waited)
    finally:
        await rec.close()
        await engine.dispose()
    _print(summary)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2))
    return 1 if violations else 0


async def _tenant_key(database_url: str) -> str:
    from db import accounts

    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            tenant = await accounts.create_tenant(session, "soak")
            user = await accounts.create_user(session, tenant.id, "soak@example.com", accounts.Role.OWNER)
            _, key = await accounts.create_api_key(session, user)
            return key
    finally:
        await engine.dispose()


async def _healthy(bases: list[str], within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as http:
        for base in bases:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{base}/health")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{base} not healthy within {within:.0f} s")
                await asyncio.sleep(0.5)


def _summary(
    args: argparse.Namespace,
    load: Load,
    runs: list[Any],
    faults: list[Fault],
    rec: Recorder,
    violations: list[Violation],
    excused: int,
    waited: float,
) -> dict[str, Any]:
    statuses = checks.run_ids(runs)
    kinds = {str(r.id): ("batch_row" if r.run_type == "batch" and r.parent_run_id else None) for r in runs}
    by_kind: Counter[str] = Counter()
    for run_id, status in statuses.items():
        tracked = load.runs.get(run_id)
        kind = tracked.kind if tracked else kinds[run_id] or "untracked (blocking runs, subworkflow children)"
        by_kind[f"{kind} {status}"] += 1
    routes: Counter[str] = Counter(
        f"{e.route} -> {e.status if e.status is not None else 'no answer'}" for e in rec.log
    )
    return {
        "seconds": args.seconds,
        "seed": args.seed,
        "runs": len(runs),
        "runs_by_kind_and_status": dict(sorted(by_kind.items())),
        "scenarios": dict(sorted(load.scenarios.items())),
        "faults": len(faults),
        "faults_by_kind_and_target": dict(sorted(Counter(f"{f.kind} {f.target}" for f in faults).items())),
        "requests": len(rec.log),
        "requests_by_status": dict(sorted(checks.status_counts(rec.log).items())),
        "requests_by_route_and_status": dict(sorted(routes.items())),
        "llm_calls_repeated_after_a_fault": excused,
        "failed_runs_by_error": dict(
            Counter((r.error or "")[:160] for r in runs if r.status == "FAILED").most_common(12)
        ),
        "settle_seconds": round(waited, 1),
        "violations": [asdict(v) for v in violations],
    }


def _print(summary: dict[str, Any]) -> None:
    out = [f"\n== soak: {summary['seconds']:.0f} s, seed {summary['seed']} =="]
    names = (
        "runs_by_kind_and_status",
        "scenarios",
        "faults_by_kind_and_target",
        "requests_by_status",
        "failed_runs_by_error",
    )
    for name in names:
        out.append(f"{name.replace('_', ' ')}:")
        out += [f"  {k}: {v}" for k, v in summary[name].items()]
    out.append(
        f"runs {summary['runs']}, faults {summary['faults']}, requests {summary['requests']}, "
        f"LLM calls repeated after a fault {summary['llm_calls_repeated_after_a_fault']}, "
        f"settled in {summary['settle_seconds']} s"
    )
    violations = summary["violations"]
    out.append(f"violations: {len(violations)}")
    out += [f"  [{v['invariant']}] {v['subject']}: {v['detail']}" for v in violations]
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    main()
