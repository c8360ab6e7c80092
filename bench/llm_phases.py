"""Where a run's time goes, from Temporal's own event timestamps (`python -m bench.run --only llm`):
the median gap between consecutive history events of the last runs of one workflow, so the LLM
graph and the Python graph can be read side by side (schedule-to-start of each workflow task, the
worker's time on it, the activity's dispatch and its body)."""

from __future__ import annotations

import statistics
from collections import defaultdict

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.stats import percentile


async def print_phases(temporal_address: str, workflow_id: str, label: str, n: int = 30) -> None:
    client = await Client.connect(temporal_address)
    gaps: dict[tuple[int, str], list[float]] = defaultdict(list)
    totals: list[float] = []
    query = f"WorkflowType = 'RunWorkflow' AND PySpurWorkflowId = '{workflow_id}'"
    async for wf in client.list_workflows(query, limit=n):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        events = history.events
        times = [e.event_time.ToDatetime().timestamp() for e in events]
        names = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]
        for i in range(1, len(events)):
            gaps[(i, f"{names[i - 1]} -> {names[i]}")].append((times[i] - times[i - 1]) * 1000)
        totals.append((times[-1] - times[0]) * 1000)
    if not totals:
        print(f"[llm] phases of {label}: no histories found")
        return
    print(
        f"[llm] phases of {label} from Temporal's event times, median of {len(totals)} runs "
        f"(start -> close p50 {percentile(totals, 50):.1f} ms):"
    )
    for (i, name), values in sorted(gaps.items()):
        if len(values) * 2 >= len(totals):  # the common shape only
            print(f"[llm]   {i:2d} {name}: {statistics.median(values):.1f} ms")
