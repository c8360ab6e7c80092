"""Spans inside workflow code, on top of temporalio's `TracingInterceptor`.

By default only the spans that tell a run's story are recorded: the workflow span, one per node
(`telemetry.in_workflow`), the work inside activities (sandbox, LLM call) and the handling of
signals and updates. temporalio's bookkeeping spans (StartWorkflow, StartActivity, RunActivity,
StartChildWorkflow, CompleteWorkflow when it succeeded) would double a run's spans, and with them
the tracing cost per run, without adding a duration an operator reads: the trace context still
travels in the same headers, so what follows nests under the request, workflow or node that
caused it. `TRACING_TEMPORAL_SPANS` turns them back on.

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
import temporalio.client
import temporalio.worker
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue
from temporalio import workflow
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

# temporalio 1.35's own span extern function and context helper (temporalio is pinned in
# pyproject.toml; the tracing tests fail if they change).
from temporalio.contrib.opentelemetry._context import attached_context
from temporalio.contrib.opentelemetry._interceptor import (
    _CompletedWorkflowSpanParams,
    _TracingWorkflowOutboundInterceptor,
)
from temporalio.worker import ExecuteWorkflowInput, WorkflowInterceptorClassInput

_EXTERN = "__temporal_opentelemetry_completed_span"


class RunTracingInterceptor(TracingInterceptor):
    """temporalio's interceptor, with the workflow span as the parent of the workflow's nodes;
    `temporal_spans=False` (the default) leaves out temporalio's bookkeeping spans."""

    def __init__(self, *, temporal_spans: bool = False) -> None:
        super().__init__()
        self.temporal_spans = temporal_spans

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        return super().intercept_client(next) if self.temporal_spans else _HeadersOnlyClient(next, self)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return super().intercept_activity(next) if self.temporal_spans else _ContextOnlyActivity(next, self)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        return _RunTracingWorkflowInbound if self.temporal_spans else _LeanWorkflowInbound


class _RunTracingWorkflowInbound(TracingWorkflowInboundInterceptor):
    complete_span = True

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        # A failure is still recorded (as CompleteWorkflow, with the exception) when the
        # completion span is off.
        with self._top_level_workflow_context(success_is_complete=self.complete_span):
            ctx = record_span(
                self, f"RunWorkflow:{workflow.info().workflow_type}", {}, opentelemetry.trace.SpanKind.SERVER
            )
            with attached_context(ctx):
                return await self.next.execute_workflow(input)


class _LeanWorkflowInbound(_RunTracingWorkflowInbound):
    complete_span = False

    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        temporalio.worker.WorkflowInboundInterceptor.init(self, _LeanWorkflowOutbound(outbound, self))


class _LeanWorkflowOutbound(_TracingWorkflowOutboundInterceptor):
    """Activities and child workflows carry the current context (the node's span) without a
    StartActivity/StartChildWorkflow span of their own. Not while replaying, like temporalio's
    spans: the commands are not sent again then."""

    def start_activity(self, input: temporalio.worker.StartActivityInput) -> workflow.ActivityHandle[Any]:
        self._carry(input)
        return self.next.start_activity(input)

    def start_local_activity(
        self, input: temporalio.worker.StartLocalActivityInput
    ) -> workflow.ActivityHandle[Any]:
        self._carry(input)
        return self.next.start_local_activity(input)

    async def start_child_workflow(
        self, input: temporalio.worker.StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        self._carry(input)
        return await self.next.start_child_workflow(input)

    def _carry(
        self,
        input: temporalio.worker.StartActivityInput
        | temporalio.worker.StartLocalActivityInput
        | temporalio.worker.StartChildWorkflowInput,
    ) -> None:
        if not workflow.unsafe.is_replaying():
            input.headers = self.root._context_to_headers(input.headers)


class _HeadersOnlyClient(temporalio.client.OutboundInterceptor):
    """Starts, signals and updates carry the caller's context (the HTTP request's span) without a
    client span each. Queries carry none: a query is no part of a run's story, and a query with a
    context would record a span in the workflow worker."""

    def __init__(self, next: temporalio.client.OutboundInterceptor, root: TracingInterceptor) -> None:
        super().__init__(next)
        self.root = root

    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        input.headers = self.root._context_to_headers(input.headers)
        return await self.next.start_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        input.headers = self.root._context_to_headers(input.headers)
        await self.next.signal_workflow(input)

    async def start_workflow_update(
        self, input: temporalio.client.StartWorkflowUpdateInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        input.headers = self.root._context_to_headers(input.headers)
        return await self.next.start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: temporalio.client.StartWorkflowUpdateWithStartInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        start, update = input.start_workflow_input, input.update_workflow_input
        start.headers = self.root._context_to_headers(start.headers)
        update.headers = self.root._context_to_headers(update.headers)
        return await self.next.start_update_with_start_workflow(input)


class _ContextOnlyActivity(temporalio.worker.ActivityInboundInterceptor):
    """An activity runs in the context it was started in (the node's span), without a RunActivity
    span: the spans it records itself (sandbox, LLM call) nest directly under the node."""

    def __init__(self, next: temporalio.worker.ActivityInboundInterceptor, root: TracingInterceptor) -> None:
        super().__init__(next)
        self.root = root

    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        with attached_context(self.root._context_from_headers(input.headers)):
            return await self.next.execute_activity(input)


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
