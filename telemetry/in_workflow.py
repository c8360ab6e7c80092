"""What workflow code records about a run besides its history: node spans, node durations and the
"current details" the Temporal UI shows while the run waits.

None of it issues a command (current details are read through a query), so adding or changing
these calls leaves the command sequence, and with it the replay of committed histories, unchanged.
Spans and durations are skipped while replaying, so a replayed run is not counted twice.
Imported by workflow code: opentelemetry, prometheus_client, temporalio and our telemetry only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import opentelemetry.context
from temporalio import workflow
from temporalio.contrib.opentelemetry import TracingWorkflowInboundInterceptor

from telemetry.metrics import get_metrics
from telemetry.temporal_tracing import record_span


def node_span(node_type: str, node_id: str, title: str, *, current: bool) -> None:
    """A span for a node starting. `current`: make it the parent of what follows in this asyncio
    task (only inside the node's own task, or it would become the parent of later nodes)."""
    interceptor = TracingWorkflowInboundInterceptor._from_context()
    if interceptor is None:
        return
    attributes = {"node.type": node_type, "node.id": node_id, "node.title": title}
    ctx = record_span(interceptor, f"node {node_type}", attributes)
    if ctx is not None and current:
        opentelemetry.context.attach(ctx)


def event_span(name: str, attributes: dict[str, str | float]) -> None:
    """A span for something that happened in the current node (a pause decided, timed out)."""
    interceptor = TracingWorkflowInboundInterceptor._from_context()
    if interceptor is not None:
        record_span(interceptor, name, attributes)


def node_settled(node_type: str, status: str, seconds: float) -> None:
    """A node's duration by type and outcome.

    Nodes run as activities, child runs or pauses are timed by the workflow clock (their start and
    end times as stored). A node evaluated inline, within one workflow task, takes no workflow time
    at all: the driver times it with `inline_clock()` instead."""
    if not workflow.unsafe.is_replaying():
        get_metrics().node_duration.labels(node_type, status).observe(max(0.0, seconds))


def inline_clock() -> float:
    """A monotonic clock for timing inline node evaluation, in seconds.

    Not deterministic, which is why workflow code may use it only this way: the reading goes to a
    metric (skipped on replay) and never into the run's state or a command, so histories replay
    the same. The sandbox forbids `time.perf_counter` to workflow code, hence the exemption."""
    with workflow.unsafe.sandbox_unrestricted():
        return time.perf_counter()


def run_details(
    running: Iterable[tuple[str, str]],
    pauses: Iterable[tuple[str, str | None]],
    triggered_by: str | None,
) -> str:
    """Markdown for the Temporal UI: the nodes running (id, type) and the open pauses (id, message)."""
    lines = []
    running = list(running)
    pauses = list(pauses)
    if pauses:
        who = f"user `{triggered_by}` (who started the run)" if triggered_by else "the run's owner"
        lines.append(f"**Waiting for a decision** by {who} or a tenant OWNER/ADMIN:")
        lines += [f"- pause `{node_id}`: {message or '(no message)'}" for node_id, message in pauses]
    if running:
        lines.append("**Running:** " + ", ".join(f"`{node_id}` ({kind})" for node_id, kind in running))
    return "\n".join(lines)


def set_details(text: str) -> None:
    """Set the execution's current details when they changed (a query reads them; no command)."""
    if workflow.get_current_details() != text:
        workflow.set_current_details(text)
