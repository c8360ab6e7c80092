"""CPU accounting over a benchmark phase, to flag figures disturbed by unrelated work on a shared machine.

``own_percent`` is the share of the machine's CPU used by this process tree (load generator plus the servers
under test, which are its children). ``other_percent`` is the share of the machine's total CPU capacity (all cores) used by processes that are not this
process or its descendants (the servers under test are our children), i.e. background noise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuSnapshot:
    busy: int  # machine-wide busy jiffies
    total: int  # machine-wide jiffies
    ours: int  # utime+stime jiffies of this process tree


def _machine() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user..steal
    return total - idle, total


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime+stime jiffies) for every readable process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()  # fields after "pid (comm) "
        table[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def _tree_jiffies(root: int) -> int:
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += table.get(pid, (0, 0))[1]
        stack.extend(children.get(pid, []))
    return total


def cpu_snapshot() -> CpuSnapshot:
    try:
        busy, total = _machine()
        return CpuSnapshot(busy, total, _tree_jiffies(os.getpid()))
    except (OSError, ValueError, IndexError):
        return CpuSnapshot(0, 0, 0)


def other_percent(start: CpuSnapshot, end: CpuSnapshot) -> float:
    """Share (%) of total machine CPU used outside our process tree between the snapshots; NaN if unknown."""
    total = end.total - start.total
    if total <= 0:
        return float("nan")
    other = (end.busy - start.busy) - (end.ours - start.ours)
    return max(0.0, 100.0 * other / total)


def own_percent(start: CpuSnapshot, end: CpuSnapshot) -> float:
    """Share (%) of total machine CPU used by our process tree (harness + servers under test)."""
    total = end.total - start.total
    return 100.0 * (end.ours - start.ours) / total if total > 0 else float("nan")
