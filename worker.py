"""The worker process: runs `RunWorkflow`, the node activities and the periodic reconciler.

Start more of these to scale out; they share the task queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

from prometheus_client import start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities.reconciler import reconcile_forever
from activities.registry import build_llm_worker, build_worker, sandbox_pool
from core.v1_dispatch import run_starts
from db.migrate import upgrade_async
from db.session import make_engine, make_session_factory
from settings import Settings, get_settings
from telemetry.logs import configure_logging
from telemetry.metrics import get_metrics
from telemetry.tracing import configure_tracing
from temporal_client import connect

log = logging.getLogger("worker")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    await upgrade_async(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url, settings.db_pool_size)
    sessions = make_session_factory(engine)
    client = await connect(settings, runtime=_temporal_runtime(settings))
    async with sandbox_pool(settings) as pool:
        # The eager queue too: runs an API started there go on here once that API is gone (and their
        # activities are scheduled there). LLM calls wait on a queue of their own with many slots.
        queues = (settings.temporal_task_queue, settings.eager_task_queue)
        starts = run_starts()
        reconciler = asyncio.create_task(
            reconcile_forever(sessions, client, settings.reconcile_interval_seconds, timedelta(seconds=30))
        )
        async with contextlib.AsyncExitStack() as workers:
            for queue in queues:
                await workers.enter_async_context(
                    build_worker(client, settings, sessions, pool, starts, task_queue=queue)
                )
            await workers.enter_async_context(build_llm_worker(client, settings, sessions))
            log.info("worker serving task queues %s and LLM calls", ", ".join(queues))
            await stop.wait()
        reconciler.cancel()
    await engine.dispose()


def _temporal_runtime(settings: Settings) -> Runtime | None:
    """The SDK's own metrics (task latencies, pollers, slots) on their Prometheus port, when set."""
    if settings.worker_temporal_metrics_port is None:
        return None
    address = f"{settings.metrics_host}:{settings.worker_temporal_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


def _observe(settings: Settings) -> None:
    configure_logging(settings)
    configure_tracing(settings, "worker")
    get_metrics(settings)
    if settings.worker_metrics_port is not None:
        start_http_server(settings.worker_metrics_port, addr=settings.metrics_host)


def main() -> None:
    settings = get_settings()
    _observe(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
