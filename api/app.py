"""`create_app(settings)`: the FastAPI application; engine, Temporal client and optional worker live in the lifespan.

Serve with `uvicorn --factory api.app:create_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from activities.registry import build_llm_worker, build_worker, sandbox_pool
from api import errors
from api.guard import RequestGuard
from api.pyspur.routes import datasets, env_mgmt, files, meta, pauses, runs, templates, workflows
from api.v1.routes import definitions as v1_definitions
from api.v1.routes import misc as v1_misc
from api.v1.routes import runs as v1_runs
from api.v1.routes import tags as v1_tags
from api.v1.routes import threads as v1_threads
from api.web import login, ui
from core.v1_dispatch import run_starts
from db.migrate import upgrade_async
from db.session import make_engine, make_session_factory
from settings import Settings, get_settings
from telemetry import db_gauges
from telemetry import metrics as prom
from telemetry.asgi import ObserveRequests
from telemetry.logs import configure_logging
from telemetry.tracing import configure_tracing, fastapi_telemetry
from temporal_client import connect

log = logging.getLogger(__name__)

_PYSPUR_PREFIXES = tuple(p + s for p in ("", "/api") for s in ("/wf", "/run", "/node", "/ds", "/of"))


class TrailingSlash:
    """PySpur's paths end in '/'; accept them without it too (no redirect, which some clients don't follow)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if not path.endswith("/") and path.startswith(_PYSPUR_PREFIXES):
                scope = dict(scope, path=path + "/", raw_path=(path + "/").encode())
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        configure_tracing(settings, "api")
        prom.get_metrics(settings)
        await upgrade_async(settings.effective_database_url)
        engine = make_engine(settings.effective_database_url, settings.db_pool_size)
        app.state.settings = settings
        app.state.sessions = make_session_factory(engine)
        app.state.temporal = await connect(settings, lazy=True)
        app.state.embedded_worker = None
        embedded = (
            asyncio.create_task(_embedded_worker(app, settings)) if settings.api_embedded_worker else None
        )
        freeze_heap()
        try:
            yield
        finally:
            if embedded is not None:
                embedded.cancel()
                await asyncio.gather(embedded, return_exceptions=True)
            await engine.dispose()

    app = FastAPI(
        title="Durable Runs API", version="0.1.0", lifespan=lifespan, telemetry=fastapi_telemetry(settings)
    )
    # Innermost of the middlewares (added first), so its refusals carry the request id too.
    app.add_middleware(RequestGuard, settings=settings)
    errors.install(app)
    app.include_router(meta.health_router)
    for prefix in ("", "/api"):
        app.include_router(pauses.router, prefix=prefix)  # before /wf/{workflow_id}/ shadows its paths
        app.include_router(workflows.router, prefix=prefix)
        app.include_router(runs.wf_router, prefix=prefix)
        app.include_router(runs.run_router, prefix=prefix)
        app.include_router(meta.node_router, prefix=prefix)
        app.include_router(datasets.ds_router, prefix=prefix)
        app.include_router(datasets.of_router, prefix=prefix)
        app.include_router(templates.router, prefix=prefix)
        app.include_router(files.router, prefix=prefix)
        app.include_router(env_mgmt.router, prefix=prefix)
    for router in (
        v1_runs.router,  # /summary is routed before /{run_id} inside it
        v1_definitions.router,
        v1_misc.folders,
        v1_misc.documents,
        v1_misc.api_keys,
        v1_misc.users,
        v1_tags.tags,
        v1_tags.path_parts,
        v1_threads.router,
    ):
        app.include_router(router)
    app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(ObserveRequests)  # inside TrailingSlash: it sees the route the router matched
    app.add_middleware(TrailingSlash)
    # The web UI: our login page, and PySpur's static build for every GET no route above matched.
    app.include_router(login.router)
    app.router.default = ui.WebUi(ui.find_build())
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    return app


def freeze_heap() -> None:
    """Leave what exists now (modules, the app, clients: ~260,000 objects) out of the garbage
    collector's full passes. Each full pass scanned them all, holding the GIL for 60-160 ms, and the
    many objects a large request allocates (a 1.7 MB JSON body: ~150,000) set off such passes: every
    request, /health included, waited for them. Garbage left now is kept for good; it is little.
    Young passes every 10,000 allocations instead of 700: parsing that body then takes 28 ms of CPU
    instead of 41 (the objects it makes are scanned less often while it makes them)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def _metrics(request: Request) -> Response:
    """Prometheus exposition, without credentials like /health; no tenant ids unless opted in."""
    m = prom.get_metrics()
    async with request.app.state.sessions() as session:
        await db_gauges.refresh_from_db(session, m)
    return Response(prom.exposition(m), media_type=CONTENT_TYPE_LATEST)


async def _embedded_worker(app: FastAPI, settings: Settings) -> None:
    """A worker inside the API process lets starts be eager: the first workflow task runs within the
    start call instead of a round trip through the task queue. User code still runs in sandbox
    processes. Waits for Temporal, and restarts the worker if it stops, so the API never depends on it."""
    while True:
        try:
            # Workers need a connected (not lazy) client, and eager start needs the starting client to
            # be the worker's own, so once connected this client serves the whole API.
            client = await connect(settings)
            async with sandbox_pool(settings) as pool:
                worker = build_worker(
                    client,
                    settings,
                    app.state.sessions,
                    pool,
                    run_starts(),
                    remote_activities=settings.api_embedded_worker_activities,
                    # Not the shared queue: its tasks may be any run's, however large (see start_queue).
                    task_queue=settings.eager_task_queue,
                )
                llm_worker = (
                    build_llm_worker(client, settings, app.state.sessions)
                    if settings.api_embedded_worker_activities
                    else None
                )
                async with worker, llm_worker or contextlib.nullcontext():
                    app.state.temporal = client
                    app.state.embedded_worker = worker
                    freeze_heap()  # what the worker built
                    await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise
        except (
            Exception
        ):  # Temporal unreachable or the worker failed: starts fall back to non-eager meanwhile
            log.warning("embedded worker unavailable; retrying", exc_info=True)
        finally:
            app.state.embedded_worker = None
        await asyncio.sleep(2.0)
