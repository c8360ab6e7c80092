"""Spans inside workflow code, on top of temporalio's `TracingInterceptor`.

temporalio records workflow-side spans as zero-length spans created outside the sandbox (an
"extern function") and never while replaying. Its workflow span is not made the parent of what the
workflow does next, and only activities, child workflows and messages get spans. This subclass makes
the workflow span current for the run, and `telemetry.in_workflow.node_span` adds one span per node
through `record_span`. Both are pure bookkeeping: no command is issued, so histories are unchanged.

This module is imported by workflow code: opentelemetry and temporalio only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import opentelemetry.context
import opentelemetry.trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue
from temporalio import workflow
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

# temporalio 1.35's own span extern function and context helper (temporalio is pinned in
# pyproject.toml; the tracing tests fail if they change).
from temporalio.contrib.opentelemetry._context import attached_context
from temporalio.contrib.opentelemetry._interceptor import _CompletedWorkflowSpanParams
from temporalio.worker import ExecuteWorkflowInput, WorkflowInterceptorClassInput

_EXTERN = "__temporal_opentelemetry_completed_span"


class RunTracingInterceptor(TracingInterceptor):
    """temporalio's interceptor, with the workflow span as the parent of the workflow's nodes."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        return _RunTracingWorkflowInbound


class _RunTracingWorkflowInbound(TracingWorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        with self._top_level_workflow_context(success_is_complete=True):
            ctx = record_span(
                self, f"RunWorkflow:{workflow.info().workflow_type}", {}, opentelemetry.trace.SpanKind.SERVER
            )
            with attached_context(ctx):
                return await self.next.execute_workflow(input)


def record_span(
    interceptor: TracingWorkflowInboundInterceptor,
    name: str,
    attributes: Mapping[str, AttributeValue],
    kind: opentelemetry.trace.SpanKind = opentelemetry.trace.SpanKind.INTERNAL,
) -> Context | None:
    """Record a span under the current one; the context with it as the current span (None when no
    span was recorded: replaying, or no trace came with the execution)."""
    if workflow.unsafe.is_replaying():
        return None
    carrier: dict[str, Any] = {}
    interceptor.text_map_propagator.inject(carrier)
    info = workflow.info()
    updated = interceptor._extern_functions[_EXTERN](  # type: ignore[literal-required]
        _CompletedWorkflowSpanParams(
            context=carrier,
            name=name,
            attributes={"temporalWorkflowID": info.workflow_id, "temporalRunID": info.run_id, **attributes},
            time_ns=workflow.time_ns(),
            link_context=None,
            exception=None,
            kind=kind,
            parent_missing=opentelemetry.trace.get_current_span() is opentelemetry.trace.INVALID_SPAN,
        )
    )
    if not updated:
        return None
    return interceptor.text_map_propagator.extract(updated, context=opentelemetry.context.get_current())
