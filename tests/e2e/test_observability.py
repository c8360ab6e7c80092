"""Traces, metrics and the Temporal UI's details of real runs (real Temporal, PostgreSQL and sandbox).

The API here hosts its own worker on a task queue of its own, so every span of a run is recorded by
this process's in-memory exporter and every counter is this process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

import devstack
from tests.builders import definition, double_graph, input_node, link, node, output_node
from tests.conftest import ROOT, Stack, Tenant, free_port, reaches, wait_until
from tests.e2e.test_blocking_and_admin import admin
from tests.e2e.test_llm_nodes import keyed_tenant, llm_graph
from tests.llm_stub import LlmStub
from tests.spans import memory_exporter
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return memory_exporter()


@pytest.fixture(scope="module")
async def traced(
    stack: Stack, tenant: Tenant, spans: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    async with _traced_api(stack, tenant) as client:
        yield client


@contextlib.asynccontextmanager
async def _traced_api(stack: Stack, tenant: Tenant, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    # The embedded worker is this queue's only worker, so it takes the LLM activities too.
    settings = stack.settings(
        tracing_enabled=True,
        api_embedded_worker=True,
        api_embedded_worker_activities=True,
        temporal_task_queue=f"obs-{uuid.uuid4().hex[:8]}",
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await wait_until(lambda: _ready(app), within=60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=90, headers=tenant.headers
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def _ready(app: Any) -> bool:
    return app.state.embedded_worker is not None


async def _workflow(api: httpx.AsyncClient, defn: dict[str, Any]) -> str:
    resp = await api.post("/wf/", json={"name": f"obs-{uuid.uuid4().hex[:6]}", "definition": defn})
    assert resp.status_code == 200, resp.text
    wf_id: str = resp.json()["id"]
    return wf_id


def _gated() -> dict[str, Any]:
    return definition(
        [
            input_node(),
            node("approve", "HumanInterventionNode", message="Is x right?"),
            output_node({"x": "approve.input_node.x"}),
        ],
        [link("input_node", "approve"), link("approve", "output_node")],
    )


def _server_span(found: Sequence[ReadableSpan], route: str) -> ReadableSpan:
    return next(s for s in found if s.kind == SpanKind.SERVER and s.name == f"POST {route}")


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The span's name and its ancestors' names, innermost first."""
    names = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def _blocking_run_trace(api: httpx.AsyncClient, spans: InMemorySpanExporter) -> list[ReadableSpan]:
    """The spans of one blocking run of the doubling graph, all of one trace."""
    wf = await _workflow(api, double_graph())
    spans.clear()
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 21}}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["output_node"] == {"y": 42}

    def request_done() -> list[ReadableSpan] | None:
        found = list(spans.get_finished_spans())
        return found if any(s.name == "POST /wf/{workflow_id}/run/" for s in found) else None

    found = await wait_until(lambda: asyncio.sleep(0, request_done()))
    http = _server_span(found, "/wf/{workflow_id}/run/")
    assert {s.context.trace_id for s in found if s.name.startswith(("node ", "sandbox"))} == {
        http.context.trace_id
    }
    return [s for s in found if s.context.trace_id == http.context.trace_id]


async def test_a_blocking_run_is_one_trace_from_the_request_through_each_node_to_the_sandbox(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    trace = await _blocking_run_trace(traced, spans)
    by_id = {s.context.span_id: s for s in trace}
    sandbox = next(s for s in trace if s.name == "sandbox")
    assert _chain(sandbox, by_id) == [
        "sandbox",
        "node PythonFuncNode",
        "RunWorkflow:RunWorkflow",
        "POST /wf/{workflow_id}/run/",
    ]
    for kind in ("InputNode", "OutputNode"):
        span = next(s for s in trace if s.name == f"node {kind}")
        assert _chain(span, by_id)[1:] == _chain(sandbox, by_id)[2:]
    py = next(s for s in trace if s.name == "node PythonFuncNode")
    assert py.attributes is not None
    assert (py.attributes["node.id"], py.attributes["node.title"]) == ("py1", "py1")
    # The request is one span: no per-message send/receive or per-operation spans beside it, and
    # none of temporalio's per-call spans (StartWorkflow, StartActivity, RunActivity, ...).
    assert sorted(s.name for s in trace) == sorted(
        [
            "POST /wf/{workflow_id}/run/",
            "RunWorkflow:RunWorkflow",
            "node InputNode",
            "node PythonFuncNode",
            "node OutputNode",
            "sandbox",
        ]
    )


async def test_temporal_spans_when_opted_in_sit_between_the_request_the_node_and_the_sandbox(
    stack: Stack, tenant: Tenant, spans: InMemorySpanExporter
) -> None:
    async with _traced_api(stack, tenant, tracing_temporal_spans=True) as api:
        trace = await _blocking_run_trace(api, spans)
    by_id = {s.context.span_id: s for s in trace}
    sandbox = next(s for s in trace if s.name == "sandbox")
    assert _chain(sandbox, by_id) == [
        "sandbox",
        "RunActivity:run_python_node",
        "StartActivity:run_python_node",
        "node PythonFuncNode",
        "RunWorkflow:RunWorkflow",
        "StartWorkflow:RunWorkflow",
        "POST /wf/{workflow_id}/run/",
    ]


async def test_an_llm_call_is_a_genai_span_of_the_run_without_its_prompt_and_counts_its_tokens(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter, stack: Stack
) -> None:
    key = f"sk-obs-{uuid.uuid4().hex}"
    with LlmStub().running() as stub:
        tenant = await keyed_tenant(stack, traced, stub, key)
        resp = await traced.post(
            "/wf/",
            json={"name": f"obs-llm-{uuid.uuid4().hex[:6]}", "definition": llm_graph()},
            headers=tenant.headers,
        )
        assert resp.status_code == 200, resp.text
        before = await _scrape(traced)
        spans.clear()
        run = await traced.post(
            f"/wf/{resp.json()['id']}/run/",
            json={"initial_inputs": {"input_node": {"topic": "secret-topic-text"}}},
            headers=tenant.headers,
        )
        assert run.status_code == 200, run.text
        assert len(stub.calls(key)) == 1
        usage = stub.usage

    def call_done() -> list[ReadableSpan] | None:
        found = list(spans.get_finished_spans())
        return found if any(s.name == "chat openai/gpt-4o" for s in found) else None

    found = await wait_until(lambda: asyncio.sleep(0, call_done()))
    call = next(s for s in found if s.name == "chat openai/gpt-4o")
    http = _server_span(found, "/wf/{workflow_id}/run/")
    assert call.kind == SpanKind.CLIENT and call.context.trace_id == http.context.trace_id
    attrs = dict(call.attributes or {})
    assert attrs["gen_ai.request.model"] == "openai/gpt-4o" and attrs["gen_ai.provider.name"] == "openai"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    text = json.dumps([dict(s.attributes or {}) for s in found], default=str)
    assert "secret-topic-text" not in text and key not in text  # no prompt, no key by default
    after = await _scrape(traced)
    assert _delta(before, after, "durable_runs_llm_calls_total", model="openai/gpt-4o", status="ok") == 1
    tokens = _delta(before, after, "durable_runs_llm_tokens_total", model="openai/gpt-4o", direction="input")
    assert tokens == usage["prompt_tokens"]


async def test_a_paused_run_names_its_open_pause_in_temporal_and_its_decision_links_to_its_trace(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter, stack: Stack, tenant: Tenant
) -> None:
    wf = await _workflow(traced, _gated())
    spans.clear()
    resp = await traced.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 3}}})
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["id"]
    await reaches(traced, run_id, "PAUSED")

    client = await Client.connect(stack.temporal_address)
    metadata = await client.get_workflow_handle(temporal_workflow_id(run_id)).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    assert "approve" in metadata.current_details
    assert "Is x right?" in metadata.current_details
    assert "OWNER/ADMIN" in metadata.current_details
    query = f"PySpurTenantId = '{tenant.tenant_id}' AND PySpurRunType = 'interactive' AND PySpurRunId = '{run_id}'"

    async def listed() -> list[str]:
        return [w.id async for w in client.list_workflows(query)]

    assert await wait_until(listed) == [temporal_workflow_id(run_id)]
    described = await client.get_workflow_handle(temporal_workflow_id(run_id)).describe()
    assert run_id in (await described.static_summary() or "")
    assert wf in (await described.static_details() or "")

    decided = await traced.post(
        f"/wf/process_pause_action/{run_id}/", json={"inputs": {}, "user_id": "alice", "action": "APPROVE"}
    )
    assert decided.status_code == 200, decided.text
    await reaches(traced, run_id, "COMPLETED")
    found = list(spans.get_finished_spans())
    started = _server_span(found, "/wf/{workflow_id}/start_run/")
    decision = _server_span(found, "/wf/process_pause_action/{run_id}/")
    handled = next(s for s in found if s.name == "HandleUpdate:decide")
    assert handled.context.trace_id == started.context.trace_id != decision.context.trace_id
    assert decision.context.trace_id in {link.context.trace_id for link in handled.links}
    pause = next(s for s in found if s.name == "node HumanInterventionNode")
    assert pause.context.trace_id == started.context.trace_id
    decided_span = next(s for s in found if s.name == "pause decided")
    assert decided_span.parent is not None and decided_span.parent.span_id == pause.context.span_id
    assert (decided_span.attributes or {})["pause.action"] == "APPROVE"
    metadata = await client.get_workflow_handle(temporal_workflow_id(run_id)).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    assert metadata.current_details.startswith("**Ended:** COMPLETED")


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _scrape(api: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = await api.get("/metrics")
    assert resp.status_code == 200
    return _samples(resp.text)


def _delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_a_known_mix_of_runs_exactly(traced: httpx.AsyncClient) -> None:
    ok = await _workflow(traced, double_graph())
    bad = await _workflow(traced, double_graph("raise ValueError('no')"))
    gated = await _workflow(traced, _gated())
    before = await _scrape(traced)
    for x in (1, 2):
        assert (
            await traced.post(f"/wf/{ok}/run/", json={"initial_inputs": {"input_node": {"x": x}}})
        ).is_success
    failed = await traced.post(f"/wf/{bad}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    assert failed.status_code == 200, failed.text
    paused = await traced.post(f"/wf/{gated}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    await reaches(traced, paused.json()["id"], "PAUSED")
    after = await _scrape(traced)

    p = "durable_runs_"
    assert _delta(before, after, p + "runs_started_total", run_type="interactive") == 4
    assert _delta(before, after, p + "runs_finished_total", status="COMPLETED", run_type="interactive") == 2
    assert _delta(before, after, p + "runs_finished_total", status="FAILED", run_type="interactive") == 1
    # These two gauges are read from the database, which other test files in this process share (their
    # paused runs may time out meanwhile): this run's pause is among them, the exact delta is not ours.
    assert after[(p + "pauses_open", frozenset())] >= 1
    assert after[(p + "runs_active", frozenset({("status", "PAUSED")}))] >= 1
    assert after[(p + "pause_oldest_age_seconds", frozenset())] > 0
    node = p + "node_duration_seconds_count"
    assert _delta(before, after, node, node_type="PythonFuncNode", status="COMPLETED") == 2
    assert _delta(before, after, node, node_type="PythonFuncNode", status="FAILED") == 1
    assert _delta(before, after, node, node_type="InputNode", status="COMPLETED") == 4
    # Inline nodes take no workflow time; their evaluation is timed by the worker's clock instead.
    spent = p + "node_duration_seconds_sum"
    assert _delta(before, after, spent, node_type="InputNode", status="COMPLETED") > 0
    assert _delta(before, after, spent, node_type="OutputNode", status="COMPLETED") > 0
    assert _delta(before, after, p + "sandbox_spawns_total") == 3
    route = "/wf/{workflow_id}/run/"
    runs_ok = _delta(before, after, p + "http_requests_total", method="POST", route=route, status="200")
    assert runs_ok == 3  # a failed run still answers 200 with its outputs, as PySpur does
    assert _delta(before, after, p + "http_request_duration_seconds_count", method="POST", route=route) == 3
    assert not any("tenant" in dict(labels) for _, labels in after)
    assert not any(run_id_like in str(labels) for _, labels in after for run_id_like in (ok, bad, gated))


@pytest.fixture(scope="module")
async def worker_process(
    stack: Stack, tenant: Tenant
) -> AsyncIterator[tuple[httpx.AsyncClient, Path, int, int]]:
    """A worker process of its own (JSON logs, both metrics ports) and an API without a worker on its queue."""
    from api.app import create_app

    queue = f"obs-w-{uuid.uuid4().hex[:8]}"
    ports = free_port(), free_port()
    log_file = stack.tmp / f"{queue}.log"
    proc = devstack.spawn(
        [sys.executable, "worker.py"],
        log_file,
        stack.env(
            TEMPORAL_TASK_QUEUE=queue,
            LOG_FORMAT="json",
            WORKER_METRICS_PORT=str(ports[0]),
            WORKER_TEMPORAL_METRICS_PORT=str(ports[1]),
        ),
    )
    try:
        devstack.wait_for_port("127.0.0.1", ports[0], proc=proc)
        app = create_app(stack.settings(temporal_task_queue=queue))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://test",
                timeout=90,
                headers=tenant.headers,
            ) as client,
        ):
            yield client, log_file, *ports
    finally:
        devstack.stop(proc)


async def _text(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as c:
        resp = await c.get(url)
    assert resp.status_code == 200
    return resp.text


async def test_a_worker_process_logs_json_lines_filterable_by_run_id_and_serves_its_metrics(
    worker_process: tuple[httpx.AsyncClient, Path, int, int],
) -> None:
    api, log_file, metrics_port, temporal_port = worker_process
    wf = await _workflow(api, double_graph())
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 2}}})
    assert resp.status_code == 200, resp.text
    run_id = (await api.get(f"/wf/{wf}/runs/")).json()[0]["id"]

    def run_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("run_id") == run_id]

    mine = await wait_until(lambda: asyncio.sleep(0, run_lines()))
    assert any(line["message"] == f"run {run_id} ended COMPLETED" for line in mine)
    assert all(line["temporal_workflow_id"] == temporal_workflow_id(run_id) for line in mine)

    worker = _samples(await _text(f"http://127.0.0.1:{metrics_port}/metrics"))
    finished = (
        "durable_runs_runs_finished_total",
        frozenset({("status", "COMPLETED"), ("run_type", "interactive")}),
    )
    assert worker[finished] >= 1
    text = await _text(f"http://127.0.0.1:{temporal_port}/metrics")
    assert any(name.startswith("temporal_") for name, _ in _samples(text))


def _series_names(text: str) -> set[str]:
    """Every series name a query may use: sample names, and those of families without samples yet."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum"),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names


async def test_every_metric_the_dashboard_queries_is_exported(
    traced: httpx.AsyncClient, worker_process: tuple[httpx.AsyncClient, Path, int, int]
) -> None:
    api, _, metrics_port, temporal_port = worker_process
    exported = _series_names((await api.get("/metrics")).text)
    exported |= _series_names(await _text(f"http://127.0.0.1:{metrics_port}/metrics"))
    exported |= _series_names(await _text(f"http://127.0.0.1:{temporal_port}/metrics"))
    queried = dashboard_metrics(json.loads(DASHBOARD.read_text()))
    assert queried, "the dashboard queries no metric"
    assert sorted(queried - exported) == []


def dashboard_metrics(dashboard: dict[str, Any]) -> set[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    return {m for expr in exprs for m in re.findall(r"\b(?:durable_runs|temporal)_[A-Za-z0-9_]+", expr)}


async def test_admin_reconcile_repairs_a_run_whose_execution_was_terminated(
    traced: httpx.AsyncClient, stack: Stack
) -> None:
    wf = await _workflow(traced, _gated())
    resp = await traced.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    run_id = resp.json()["id"]
    await reaches(traced, run_id, "PAUSED")
    client = await Client.connect(stack.temporal_address)
    await client.get_workflow_handle(temporal_workflow_id(run_id)).terminate("stuck")
    # The worker's own reconciler waits 30 s before it looks at a run; the command looks now.
    printed = await asyncio.to_thread(admin, stack, "reconcile", run_id)
    assert printed.strip() == f"{run_id} repaired"
    body = (await traced.get(f"/run/{run_id}/")).json()
    assert body["status"] == "CANCELED"
