"""Turning tracing on in a process: the tracer provider, the Temporal interceptor, FastAPI spans.

Off (the default: no `OTEL_EXPORTER_OTLP_ENDPOINT`, `TRACING_ENABLED` false) nothing is installed:
no interceptor on the Temporal client, no ASGI middleware, and `span()` is OpenTelemetry's no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import opentelemetry.trace
from fastapi import FastAPI
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from settings import Settings

_TRACER = "durable_runs"
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
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint))
    )
    opentelemetry.trace.set_tracer_provider(provider)
    _configured.append(role)


def temporal_interceptors(settings: Settings) -> list[Any]:
    """The Temporal client's interceptors (workers built on the client inherit them)."""
    if not settings.tracing_active:
        return []
    from telemetry.temporal_tracing import RunTracingInterceptor

    return [RunTracingInterceptor()]


def instrument_app(app: FastAPI, settings: Settings) -> None:
    """One server span per HTTP request, named by route template; health and metrics scrapes excluded."""
    if not settings.tracing_active:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="/health,/metrics")


@contextlib.contextmanager
def span(name: str, attributes: dict[str, AttributeValue] | None = None) -> Iterator[Span]:
    """A span under the current one (a no-op span when tracing is off)."""
    with opentelemetry.trace.get_tracer(_TRACER).start_as_current_span(name, attributes=attributes) as s:
        yield s


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, for log lines; None outside a trace."""
    ctx = opentelemetry.trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
