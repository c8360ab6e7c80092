"""Measurements, summaries and the comparison table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

FLOOR = "floor"
OURS = "ours"
PYSPUR = "pyspur"


@dataclass
class Measurement:
    """One load phase of one system. ``concurrency == 1`` means sequential (back-to-back)."""

    name: str
    latencies_ms: list[float]
    wall_s: float
    n: int
    concurrency: int
    note: str = ""
    other_cpu_pct: float = math.nan  # % of machine CPU used by unrelated processes during the phase
    own_cpu_pct: float = math.nan  # % of machine CPU used by the harness and the servers it started
    errors: int = 0  # failed runs (only when errors were tolerated); not counted in throughput


@dataclass(frozen=True)
class Summary:
    p50_ms: float
    p95_ms: float
    mean_ms: float
    throughput_rps: float


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default method); NaN for an empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarize(m: Measurement) -> Summary:
    """p50/p95/mean latency in ms and throughput (completed runs per wall-clock second)."""
    mean = statistics.fmean(m.latencies_ms) if m.latencies_ms else math.nan
    throughput = (m.n - m.errors) / m.wall_s if m.wall_s > 0 else math.nan
    return Summary(
        p50_ms=percentile(m.latencies_ms, 50),
        p95_ms=percentile(m.latencies_ms, 95),
        mean_ms=mean,
        throughput_rps=throughput,
    )


def _find(rows: Sequence[Measurement], name: str, sequential: bool) -> Measurement | None:
    """First row named ``name``: the sequential one, or the one with the highest concurrency."""
    matches = [r for r in rows if r.name == name and (r.concurrency == 1) == sequential]
    if not matches:
        return None
    return max(matches, key=lambda r: r.concurrency)


def _ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or not den or math.isnan(num) or math.isnan(den):
        return "n/a"
    return f"{num / den:.2f}x"


def ratio_lines(rows: Sequence[Measurement]) -> list[str]:
    """ours/floor p50, ours/pyspur p50, ours/pyspur throughput (plus pyspur/floor for context)."""

    def p50(name: str) -> float | None:
        row = _find(rows, name, sequential=True)
        return summarize(row).p50_ms if row else None

    def tput(name: str) -> float | None:
        row = _find(rows, name, sequential=False)
        return summarize(row).throughput_rps if row else None

    return [
        f"ours/floor    p50 latency : {_ratio(p50(OURS), p50(FLOOR))}",
        f"ours/pyspur   p50 latency : {_ratio(p50(OURS), p50(PYSPUR))}",
        f"ours/pyspur   throughput  : {_ratio(tput(OURS), tput(PYSPUR))}",
        f"pyspur/floor  p50 latency : {_ratio(p50(PYSPUR), p50(FLOOR))}",
        f"pyspur/floor  throughput  : {_ratio(tput(PYSPUR), tput(FLOOR))}",
    ]


def format_table(rows: Sequence[Measurement]) -> str:
    header = f"{'system':<14}{'conc':>5}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}{'runs/s':>9}{'own%':>6}{'other%':>7}{'err':>5}  note"
    lines = [header, "-" * len(header)]
    for r in rows:
        s = summarize(r)
        lines.append(
            f"{r.name:<14}{r.concurrency:>5}{r.n:>6}{s.p50_ms:>10.1f}{s.p95_ms:>10.1f}"
            f"{s.mean_ms:>10.1f}{s.throughput_rps:>9.1f}{r.own_cpu_pct:>6.0f}{r.other_cpu_pct:>7.0f}{r.errors:>5}  {r.note}"
        )
    return "\n".join(lines)


def print_table(rows: Sequence[Measurement]) -> None:
    """Print the fixed-width comparison table followed by the ratio lines."""
    print(format_table(rows))
    print()
    for line in ratio_lines(rows):
        print(line)
