"""Log lines, the LLM-call hook and replay with tracing on, without servers."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, set_span_in_context
from prometheus_client import REGISTRY, CollectorRegistry
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from settings import Settings
from telemetry.in_workflow import run_details
from telemetry.llm import llm_call
from telemetry.logs import JsonFormatter, TextFormatter, bind_ids, configure_logging
from telemetry.metrics import build_metrics, get_metrics, tenant
from telemetry.temporal_tracing import RunTracingInterceptor
from telemetry.tracing import fastapi_telemetry, sampler, span
from tests.spans import memory_exporter
from tests.unit.test_replay import HISTORIES, WORKFLOWS


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return memory_exporter()


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.telemetry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


def _lines(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_log_lines_of_one_run_can_be_filtered_by_its_run_id(
    json_lines: io.StringIO, spans: InMemorySpanExporter
) -> None:
    log = logging.getLogger("test.telemetry")

    def request(run_id: str) -> None:
        bind_ids(request_id=f"req-{run_id}", run_id=run_id, workflow_id="wf-1")
        with span("work") as s:
            log.info("working on %s", run_id)
            trace_ids.append(format(s.get_span_context().trace_id, "032x"))

    trace_ids: list[str] = []
    for run_id in ("r1", "r2"):
        contextvars.copy_context().run(request, run_id)
    log.info("outside any run")

    lines = _lines(json_lines)
    mine = [line for line in lines if line.get("run_id") == "r1"]
    assert [line["message"] for line in mine] == ["working on r1"]
    assert mine[0]["request_id"] == "req-r1" and mine[0]["workflow_id"] == "wf-1"
    assert mine[0]["trace_id"] == trace_ids[0]
    assert "run_id" not in lines[-1] and "trace_id" not in lines[-1]


def test_temporal_logger_extras_name_the_execution_and_the_run(json_lines: io.StringIO) -> None:
    log = logging.getLogger("test.telemetry")
    temporal = {"workflow_id": "run-abc", "run_id": "t-run", "activity_type": "finalize_run"}
    log.info("finalized", extra={"temporal_activity": temporal})
    [line] = _lines(json_lines)
    assert line["run_id"] == "abc"
    assert line["temporal_workflow_id"] == "run-abc" and line["temporal_run_id"] == "t-run"
    assert line["temporal_activity_type"] == "finalize_run"


def test_text_lines_stay_readable_and_append_the_ids() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    ctx = contextvars.copy_context()
    ctx.run(bind_ids, run_id="r9")
    text = ctx.run(TextFormatter().format, record)
    assert text.endswith("hello [run_id=r9]")


def test_api_text_logs_carry_the_request_run_and_trace_ids_on_uvicorn_lines_too(
    capsys: pytest.CaptureFixture[str], spans: InMemorySpanExporter
) -> None:
    """Under uvicorn the root logger has no handler of its own: ours is installed, and uvicorn's
    loggers (which come with their own handlers and format) go through it."""
    root, uvicorn_error = logging.getLogger(), logging.getLogger("uvicorn.error")
    saved = (root.handlers[:], root.level, uvicorn_error.handlers[:], uvicorn_error.propagate)
    root.handlers[:] = []
    uvicorn_error.handlers[:] = [logging.StreamHandler()]  # as uvicorn's LOGGING_CONFIG leaves it
    uvicorn_error.propagate = False

    def request() -> str:
        bind_ids(request_id="req-7", run_id="run-7")
        with span("POST /wf/{workflow_id}/run/") as s:
            uvicorn_error.warning("Exception in ASGI application")
            return format(s.get_span_context().trace_id, "032x")

    try:
        configure_logging(Settings(log_format="text"))
        trace_id = contextvars.copy_context().run(request)
    finally:
        root.handlers[:], uvicorn_error.handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        uvicorn_error.propagate = saved[3]
    [line] = [x for x in capsys.readouterr().err.splitlines() if "Exception in ASGI" in x]
    assert line.endswith(f"[request_id=req-7 run_id=run-7 trace_id={trace_id}]"), line
    assert " uvicorn.error WARNING " in line


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_llm_call_span_has_genai_attributes_tokens_and_cost_but_no_prompt_by_default(
    spans: InMemorySpanExporter,
) -> None:
    get_metrics()
    model = "test-model-a"
    spans.clear()
    with llm_call(provider="openai", model=model) as call:
        call.prompt([{"role": "user", "content": "secret prompt"}])
        call.completion([{"role": "assistant", "content": "secret answer"}])
        call.finished(input_tokens=12, output_tokens=5, finish_reason="stop", cost_usd=0.25)
    [s] = spans.get_finished_spans()
    attrs = dict(s.attributes or {})
    assert s.name == f"chat {model}"
    assert attrs["gen_ai.request.model"] == model and attrs["gen_ai.provider.name"] == "openai"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 5)
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "secret" not in json.dumps({k: str(v) for k, v in attrs.items()})
    assert _sample("durable_runs_llm_calls_total", model=model, status="ok") == 1
    assert _sample("durable_runs_llm_tokens_total", model=model, direction="input") == 12
    assert _sample("durable_runs_llm_tokens_total", model=model, direction="output") == 5
    assert _sample("durable_runs_llm_cost_usd_total", model=model) == 0.25


def test_an_llm_call_keeps_content_when_opted_in_and_counts_a_failure(spans: InMemorySpanExporter) -> None:
    model = "test-model-b"
    spans.clear()
    with llm_call(provider="openai", model=model, capture_content=True) as call:
        call.prompt([{"role": "user", "content": "hi"}])
    with pytest.raises(TimeoutError), llm_call(provider="openai", model=model):
        raise TimeoutError
    ok, failed = spans.get_finished_spans()
    assert "hi" in str((ok.attributes or {})["gen_ai.input.messages"])
    assert (failed.attributes or {})["error.type"] == "TimeoutError"
    assert _sample("durable_runs_llm_calls_total", model=model, status="error") == 1


@pytest.mark.parametrize("temporal_spans", [False, True], ids=["run-spans", "temporal-spans"])
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_histories_replay_with_tracing_on_in_the_sandbox_the_worker_uses(
    path: Path, temporal_spans: bool, spans: InMemorySpanExporter
) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        interceptors=[RunTracingInterceptor(temporal_spans=temporal_spans)],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                "opentelemetry", "prometheus_client", "telemetry"
            )
        ),
    )
    history = json.loads(await asyncio.to_thread(path.read_text))
    await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, history))


def test_metrics_carry_a_tenant_label_only_when_opted_in() -> None:
    plain = build_metrics(CollectorRegistry())
    tenanted = build_metrics(CollectorRegistry(), tenant_labels=True)
    plain.runs_started.labels("interactive").inc()
    tenanted.runs_started.labels("interactive", "t-1").inc()
    assert (
        plain.registry.get_sample_value("durable_runs_runs_started_total", {"run_type": "interactive"}) == 1
    )
    labels = {"run_type": "interactive", "tenant": "t-1"}
    assert tenanted.registry.get_sample_value("durable_runs_runs_started_total", labels) == 1
    assert tenant(plain, "t-1") == () and tenant(tenanted, "t-1") == ("t-1",)


def test_current_details_name_open_pauses_with_message_and_who_may_decide() -> None:
    text = run_details([("py1", "PythonFuncNode")], [("approve", "Is x right?")], "u-7")
    assert "`approve`: Is x right?" in text
    assert "user `u-7` (who started the run) or a tenant OWNER/ADMIN" in text
    assert "**Running:** `py1` (PythonFuncNode)" in text
    assert run_details([], [], None) == ""


def test_the_sample_ratio_decides_where_a_trace_starts_and_a_started_trace_stays_whole() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler(0.0))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("new request") as root:
        assert not root.is_recording()
    caller = SpanContext(trace_id=7, span_id=9, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracer.start_as_current_span("activity", context=set_span_in_context(NonRecordingSpan(caller))):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["activity"]
    everything = TracerProvider(sampler=sampler(1.0)).get_tracer("t")
    with everything.start_as_current_span("new request") as root:
        assert root.is_recording()


@pytest.mark.parametrize("on", [True, False])
async def test_http_requests_get_one_server_span_when_tracing_is_on_and_none_when_off_or_probed(
    spans: InMemorySpanExporter, on: bool
) -> None:
    app = FastAPI(telemetry=fastapi_telemetry(Settings(tracing_enabled=on)))

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    spans.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/items/3")).status_code == 200
        assert (await client.get("/health")).status_code == 200
    names = [(s.name, s.kind) for s in spans.get_finished_spans()]
    assert names == ([("GET /items/{item_id}", SpanKind.SERVER)] if on else [])
