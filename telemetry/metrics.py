"""The Prometheus metrics of the API and the worker (`get_metrics()`), and the `/metrics` text.

Counters and histograms are kept in process and summed by Prometheus across replicas. What the
database knows better than any one process (open pauses and their age, runs waiting or running) is
read at scrape time (`telemetry.db_gauges`). Workflow code records node durations here too (through
`telemetry.temporal_tracing`), so this module imports prometheus_client and nothing of ours but settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import REGISTRY

from settings import Settings

PREFIX = "durable_runs"
# Node and HTTP latencies span from an inline node (microseconds) to a person's decision (hours).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    http_requests: Counter
    http_latency: Histogram
    runs_started: Counter
    runs_finished: Counter
    runs_active: Gauge
    node_duration: Histogram
    pauses_open: Gauge
    pause_oldest_age: Gauge
    batch_rows: Counter
    sandbox_pool_size: Gauge
    sandbox_spawns: Counter
    sandbox_kills: Counter
    llm_calls: Counter
    llm_tokens: Counter
    llm_cost: Counter
    llm_latency: Histogram
    reconciler_repairs: Counter
    tenant_labels: bool
    workflow_task_failures_ended: Counter
    workflow_tasks_retrying: Gauge


def build_metrics(registry: CollectorRegistry, *, tenant_labels: bool = False) -> Metrics:
    """Every metric this service exports, registered on `registry` (the dashboard queries these names)."""
    t = ("tenant",) if tenant_labels else ()

    def name(n: str) -> str:
        return f"{PREFIX}_{n}"

    return Metrics(
        registry=registry,
        http_requests=Counter(
            name("http_requests"),
            "HTTP requests by route template and status",
            ("method", "route", "status"),
            registry=registry,
        ),
        http_latency=Histogram(
            name("http_request_duration_seconds"),
            "HTTP request latency by route template",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        runs_started=Counter(
            name("runs_started"), "Executions started, by run type", ("run_type", *t), registry=registry
        ),
        runs_finished=Counter(
            name("runs_finished"),
            "Runs that reached a terminal status, by status and run type",
            ("status", "run_type", *t),
            registry=registry,
        ),
        runs_active=Gauge(
            name("runs_active"),
            "Runs PENDING, RUNNING or PAUSED now (read from the database)",
            ("status", *t),
            registry=registry,
        ),
        node_duration=Histogram(
            name("node_duration_seconds"),
            "Node execution time by node type and outcome",
            ("node_type", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        pauses_open=Gauge(
            name("pauses_open"),
            "Human-step pauses waiting for a decision (read from the database)",
            t,
            registry=registry,
        ),
        pause_oldest_age=Gauge(
            name("pause_oldest_age_seconds"),
            "Age of the oldest open pause (0 when none)",
            t,
            registry=registry,
        ),
        batch_rows=Counter(
            name("batch_rows"), "Batch dataset rows recorded, by outcome", ("outcome",), registry=registry
        ),
        sandbox_pool_size=Gauge(
            name("sandbox_pool_size"),
            "Sandbox processes alive (zygote and forked children)",
            registry=registry,
        ),
        sandbox_spawns=Counter(name("sandbox_spawns"), "Sandbox child processes forked", registry=registry),
        sandbox_kills=Counter(
            name("sandbox_kills"), "Sandbox runs ended by a limit, by limit", ("limit",), registry=registry
        ),
        llm_calls=Counter(
            name("llm_calls"),
            "LLM provider calls by model and status",
            ("model", "status"),
            registry=registry,
        ),
        llm_tokens=Counter(
            name("llm_tokens"),
            "LLM tokens by model and direction (input, output)",
            ("model", "direction"),
            registry=registry,
        ),
        llm_cost=Counter(
            name("llm_cost_usd"), "LLM spend in US dollars by model", ("model",), registry=registry
        ),
        llm_latency=Histogram(
            name("llm_call_duration_seconds"),
            "LLM call latency by model",
            ("model",),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        reconciler_repairs=Counter(
            name("reconciler_repairs"),
            "Runs the reconciler wrote for a closed execution, by status written",
            ("status",),
            registry=registry,
        ),
        tenant_labels=tenant_labels,
        workflow_task_failures_ended=Counter(
            name("workflow_task_failures_ended"),
            "Executions the reconciler ended because their workflow task kept failing",
            registry=registry,
        ),
        workflow_tasks_retrying=Gauge(
            name("workflow_tasks_retrying"),
            "Open runs whose workflow task is being retried (attempt 2 or more) at the reconciler's last"
            " full pass over open runs; a run it ended is not counted",
            registry=registry,
        ),
    )


_built: list[Metrics] = []


def get_metrics(settings: Settings | None = None) -> Metrics:
    """The process's metrics, on the default registry (beside the client's process and GC metrics).

    Built on first use; tenant labels are a process-wide choice taken from the first caller's
    settings (the API and the worker pass theirs at start)."""
    if not _built:
        _built.append(
            build_metrics(REGISTRY, tenant_labels=bool(settings and settings.metrics_tenant_labels))
        )
    return _built[0]


def tenant(m: Metrics, tenant_id: object) -> tuple[str, ...]:
    """The tenant label values, when tenant labels are on."""
    return (str(tenant_id),) if m.tenant_labels else ()


def exposition(m: Metrics) -> bytes:
    return generate_latest(m.registry)
