"""The invariants, checked once the load has stopped and every process is back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.reconciler import temporal_status
from soak.recorder import Exchange

OPEN = ("PENDING", "RUNNING")
# After a dependency is back, pools reconnect and in-flight requests drain: 503s this long after count.
GRACE_SECONDS = 10.0


@dataclass
class Fault:
    target: str
    target_kind: str  # api | worker | temporal | postgres
    kind: str  # kill | stop
    t0: float
    t1: float  # when the process was back (restarted and listening, or continued)


@dataclass
class Violation:
    invariant: str
    subject: str  # a run id, a request
    detail: str


_RUNS = text(
    """SELECT id, status, run_type, parent_run_id, draft_state, error, rows_total, rows_done, output_file_id
       FROM runs"""
)


async def settle(sessions: async_sessionmaker[AsyncSession], within: float) -> float:
    """Wait until no started run is PENDING or RUNNING (bounded); seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        async with sessions() as session:
            n = await session.scalar(
                text(
                    "SELECT count(*) FROM runs WHERE status IN ('PENDING', 'RUNNING') AND draft_state IS NULL"
                )
            )
        if not n:
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - t0


async def stored_runs(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(_RUNS)).all())


async def check_runs(
    sessions: async_sessionmaker[AsyncSession], client: Client, runs: list[Any]
) -> list[Violation]:
    """Every started run terminal or paused, and in the state Temporal's record gives it."""
    found: list[Violation] = []
    batch_parents = {r.id for r in runs if r.run_type == "batch" and r.parent_run_id is None}
    for r in runs:
        if r.draft_state is not None or r.parent_run_id in batch_parents:
            continue  # a v1 draft has no execution; a batch row runs inside its chunk's execution
        if r.status in OPEN:
            found.append(Violation("settled", str(r.id), f"still {r.status} after the settle"))
            continue
        expected = await _temporal_agrees(client, r.id, r.status)
        if expected != r.status:
            found.append(
                Violation(
                    "db_equals_temporal",
                    str(r.id),
                    f"database {r.status}, Temporal {expected}; error {r.error!r}",
                )
            )
    found += await _batch_rows(sessions, [r for r in runs if r.id in batch_parents])
    return found


async def _temporal_agrees(client: Client, run_id: Any, status: str, within: float = 30.0) -> str:
    """Temporal's status of the run, read again for a while if it disagrees: a run's terminal write
    lands before its execution closes, and after a worker was lost that last workflow task may wait
    for its timeout."""
    deadline = time.monotonic() + within
    while True:
        temporal = await temporal_status(client, run_id)
        expected = "PAUSED" if temporal is None else temporal.value
        if expected == status or time.monotonic() > deadline:
            return expected
        await asyncio.sleep(1.0)


async def _batch_rows(sessions: async_sessionmaker[AsyncSession], parents: list[Any]) -> list[Violation]:
    """Each dataset row of a batch once: one child run and one output line per row, none twice."""
    found = []
    async with sessions() as session:
        for p in parents:
            children = await session.scalar(
                text("SELECT count(*) FROM runs WHERE parent_run_id = :p"), {"p": p.id}
            )
            idx = list(
                await session.scalars(
                    text("SELECT idx FROM output_lines WHERE output_file_id = :f ORDER BY idx"),
                    {"f": p.output_file_id},
                )
            )
            problems = []
            if len(idx) != len(set(idx)):
                problems.append("an output line twice")
            if children != len(idx) or (p.rows_done is not None and p.rows_done != children):
                problems.append(f"{children} child runs, {len(idx)} lines, rows_done {p.rows_done}")
            if p.status in ("COMPLETED", "FAILED") and idx != list(range(p.rows_total or 0)):
                problems.append(
                    f"{p.status} with lines {idx[:5]}... for {p.rows_total} rows (rows_done "
                    f"{p.rows_done}, output file {p.output_file_id}, error {p.error!r})"
                )
            if problems:
                found.append(Violation("batch_rows_once", str(p.id), "; ".join(problems)))
    return found


def check_llm(
    calls: dict[str, list[list[float]]],
    tokens: dict[str, str],
    statuses: dict[str, str],
    faults: list[Fault],
) -> tuple[list[Violation], int]:
    """No LLM call answered by the provider is made again, unless a fault (a worker, Temporal or the
    database lost) fell between the answer and the repeat; returns the violations and the excused repeats."""
    found, excused = [], 0
    for token, run_id in tokens.items():
        seen = sorted(calls.get(token, []))
        answered = [t for t, status in seen if status == 200]
        if statuses.get(run_id) == "COMPLETED" and not answered:
            found.append(
                Violation("llm_no_repeat", run_id, "run COMPLETED but the provider answered no call")
            )
        if len(answered) < 2:
            continue
        first, last = answered[0], seen[-1][0]
        if any(f.target_kind != "api" and f.t0 <= last and f.t1 + GRACE_SECONDS >= first for f in faults):
            excused += 1
        else:
            found.append(
                Violation("llm_no_repeat", run_id, f"{len(answered)} answered calls, no fault in between")
            )
    return found, excused


def check_http(log: list[Exchange], faults: list[Fault]) -> list[Violation]:
    """No 5xx but a 503 with Retry-After while PostgreSQL or Temporal was down (or just back); no
    request unanswered unless its API process (or a dependency it waited on) was faulted meanwhile."""
    found = []

    def during(e: Exchange, kinds: tuple[str, ...], target: str | None = None) -> bool:
        return any(
            f.target_kind in kinds
            and (target is None or f.target == target)
            and f.t0 <= e.t1
            and f.t1 + GRACE_SECONDS >= e.t0
            for f in faults
        )

    for e in log:
        where = f"{e.route} on api{e.api} at {time.strftime('%H:%M:%S', time.gmtime(e.t0))}"
        if e.status is None:
            if not during(e, ("api",), f"api{e.api}") and not during(e, ("postgres", "temporal")):
                found.append(Violation("answered", where, f"no answer ({e.error}) with no fault in force"))
        elif e.status >= 500:
            if e.status == 503 and e.retry_after and during(e, ("postgres", "temporal")):
                continue
            why = (
                "without Retry-After" if e.status == 503 and not e.retry_after else "with no dependency down"
            )
            detail = f"{e.status} {why if e.status == 503 else ''} {e.error}".strip()
            found.append(Violation("no_5xx", where, detail))
    return found


def status_counts(log: list[Exchange]) -> Counter[str]:
    return Counter(str(e.status) if e.status is not None else f"no answer ({e.error})" for e in log)


def run_ids(runs: list[Any]) -> dict[str, str]:
    return {str(r.id): r.status for r in runs}
