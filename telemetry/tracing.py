"""Turning tracing on in a process: the tracer provider, the Temporal interceptor, FastAPI spans.

Off (the default: no `OTEL_EXPORTER_OTLP_ENDPOINT`, `TRACING_ENABLED` false) nothing is installed:
no interceptor on the Temporal client, FastAPI's tracing off, and `span()` is OpenTelemetry's no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import opentelemetry.trace
from fastapi.telemetry import TelemetryConfig
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

_TRACER = "durable_runs"
_UNTRACED_PATHS = frozenset({"/health", "/metrics"})
_configured: list[str] = []


def configure_tracing(settings: Settings, role: str) -> None:
    """Install an SDK tracer provider exporting over OTLP, once per process, when an endpoint is set.

    With `TRACING_ENABLED` and no endpoint, spans go to whichever provider the embedding program
    installed (tests install an in-memory exporter)."""
    if _configured or not settings.otel_exporter_otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": settings.otel_service_name, "service.component": role})
    provider = TracerProvider(resource=resource, sampler=sampler(settings.tracing_sample_ratio))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint))
    )
    opentelemetry.trace.set_tracer_provider(provider)
    _configured.append(role)


def sampler(ratio: float) -> Sampler:
    """Record `ratio` of the traces this process starts; a trace begun elsewhere (the run's HTTP
    request, a workflow's activity) keeps its caller's decision, so a trace is whole or absent.
    Unrecorded spans are cheap no-op spans."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    return ParentBased(TraceIdRatioBased(ratio))


def temporal_interceptors(settings: Settings) -> list[Any]:
    """The Temporal client's interceptors (workers built on the client inherit them)."""
    if not settings.tracing_active:
        return []
    from telemetry.temporal_tracing import RunTracingInterceptor

    return [RunTracingInterceptor(temporal_spans=settings.tracing_temporal_spans)]


def fastapi_telemetry(settings: Settings) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry support: one server span per HTTP request, named by route
    template; health and metrics scrapes excluded. Its metrics and log records stay off
    (`telemetry.asgi` counts requests for Prometheus; logs go through `telemetry.logs`), and so do
    its per-request dependency/endpoint/serialization spans, to keep a run's trace small and cheap."""
    return TelemetryConfig(
        tracing=settings.tracing_active,
        metrics=False,
        logs=False,
        operation_spans=False,
        exclude=_untraced,
    )


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED_PATHS


@contextlib.contextmanager
def span(name: str, attributes: dict[str, AttributeValue] | None = None) -> Iterator[Span]:
    """A span under the current one (a no-op span when tracing is off)."""
    with opentelemetry.trace.get_tracer(_TRACER).start_as_current_span(name, attributes=attributes) as s:
        yield s


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, for log lines; None outside a trace."""
    ctx = opentelemetry.trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
