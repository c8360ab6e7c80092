"""Connect to Temporal (local dev server, a cluster or Temporal Cloud) with our data converter."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from settings import Settings
from telemetry.tracing import temporal_interceptors


def _tls(settings: Settings) -> TLSConfig | bool:
    if not (settings.temporal_tls or settings.temporal_tls_cert or settings.temporal_tls_ca):
        return False
    return TLSConfig(
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None,
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None,
    )


async def connect(settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None) -> Client:
    """A client for our namespace; `lazy` defers the connection to first use (the API must start
    and answer /health even while Temporal is down). With tracing on it carries the tracing
    interceptor, which workers built on it inherit; `runtime` carries the worker's SDK metrics."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=_tls(settings) or bool(settings.temporal_api_key),
        api_key=settings.temporal_api_key,
        data_converter=pydantic_data_converter,
        lazy=lazy,
        interceptors=temporal_interceptors(settings),
        runtime=runtime,
    )


def connect_failure(err: BaseException) -> bool:
    """Whether `err` is a lazy client's failed first connection (the API started while Temporal was
    away). The SDK raises a bare RuntimeError for it, not the RPCError UNAVAILABLE it raises once
    connected, so callers that treat Temporal being away as 503 need this test too."""
    return isinstance(err, RuntimeError) and str(err).startswith("Failed client connect")
