"""`python -m bench.run --only tracing`: the blocking run with tracing exported to a local OTLP sink vs off.

The sink is a gRPC OTLP trace receiver in this process that counts the spans it is sent and drops
them, so the figure is the cost of recording and exporting, not of a collector's storage.
"""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.ours import bench_ours
from bench.ports import free_port
from bench.stats import Measurement


class _Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0

    async def Export(self, request, _context):  # type: ignore[no-untyped-def]
        self.spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def bench_tracing(n_seq: int, n_conc: int, conc: int, warmup: int) -> list[Measurement]:
    off = await bench_ours(n_seq, n_conc, conc, warmup)
    sink = _Sink()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        on = await bench_ours(
            n_seq, n_conc, conc, warmup, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}"
        )
    finally:
        await server.stop(None)
    print(f"OTLP sink received {sink.spans} spans")
    for row in on:
        row.note = "tracing exported to a local OTLP sink"
    return [*off, *on]
