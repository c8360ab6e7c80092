"""The hook for LLM calls: one span with OpenTelemetry's GenAI attributes and the LLM metrics.

Call it from the activity that talks to the provider (never from workflow code):

    with llm_call(provider="openai", model=config.model, capture_content=settings.tracing_capture_content) as call:
        call.prompt(messages)                      # kept only when capture_content is on
        response = await client.chat(...)
        call.finished(input_tokens=..., output_tokens=..., finish_reason="stop", cost_usd=...)

An exception leaving the block marks the call as an error (status label "error", span status ERROR,
`error.type`); the exception is not swallowed. Prompts, completions and keys never reach the span
unless `capture_content` is set (`TRACING_CAPTURE_CONTENT`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import opentelemetry.trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from telemetry.metrics import get_metrics

_TRACER = "durable_runs.llm"


@dataclass
class LlmCall:
    span: Span
    model: str
    capture_content: bool
    status: str = "ok"
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def prompt(self, messages: Any) -> None:
        if self.capture_content:
            self.span.set_attribute("gen_ai.input.messages", json.dumps(messages, default=str))

    def completion(self, messages: Any) -> None:
        if self.capture_content:
            self.span.set_attribute("gen_ai.output.messages", json.dumps(messages, default=str))

    def finished(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reason: str | None = None,
        response_model: str | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """What the provider answered (any part may be unknown)."""
        if input_tokens is not None:
            self.input_tokens = input_tokens
            self.span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            self.output_tokens = output_tokens
            self.span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if finish_reason is not None:
            self.span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        if response_model is not None:
            self.span.set_attribute("gen_ai.response.model", response_model)
        if cost_usd is not None:
            self.cost_usd = cost_usd


@contextlib.contextmanager
def llm_call(
    *, provider: str, model: str, operation: str = "chat", capture_content: bool = False
) -> Iterator[LlmCall]:
    """Trace and count one LLM call (see the module docstring)."""
    tracer = opentelemetry.trace.get_tracer(_TRACER)
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.request.model": model,
    }
    start = time.perf_counter()
    with tracer.start_as_current_span(
        f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False
    ) as span:
        call = LlmCall(span=span, model=model, capture_content=capture_content)
        try:
            yield call
        except BaseException as exc:
            call.status = "error"
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            m = get_metrics()
            m.llm_calls.labels(model, call.status).inc()
            m.llm_latency.labels(model).observe(time.perf_counter() - start)
            if call.input_tokens:
                m.llm_tokens.labels(model, "input").inc(call.input_tokens)
            if call.output_tokens:
                m.llm_tokens.labels(model, "output").inc(call.output_tokens)
            if call.cost_usd:
                m.llm_cost.labels(model).inc(call.cost_usd)
