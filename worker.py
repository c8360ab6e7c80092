"""The worker process: runs `RunWorkflow`, the node activities and the periodic reconciler.

Start more of these to scale out; they share the task queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from activities.reconciler import reconcile_forever
from activities.registry import build_worker, sandbox_pool
from core.v1_dispatch import run_starts
from db.migrate import upgrade_async
from db.session import make_engine, make_session_factory
from settings import Settings, get_settings
from temporal_client import connect

log = logging.getLogger("worker")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    await upgrade_async(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url, settings.db_pool_size)
    sessions = make_session_factory(engine)
    client = await connect(settings)
    async with sandbox_pool(settings) as pool:
        worker = build_worker(client, settings, sessions, pool, run_starts())
        reconciler = asyncio.create_task(
            reconcile_forever(sessions, client, settings.reconcile_interval_seconds, timedelta(seconds=30))
        )
        async with worker:
            log.info("worker serving task queue %s", settings.temporal_task_queue)
            await stop.wait()
        reconciler.cancel()
    await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
