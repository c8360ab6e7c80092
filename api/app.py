"""`create_app(settings)`: the FastAPI application; engine, Temporal client and optional worker live in the lifespan.

Serve with `uvicorn --factory api.app:create_app`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from activities.registry import build_worker, sandbox_pool
from api import errors
from api.routes import meta, runs, workflows
from db.migrate import upgrade_async
from db.session import make_engine, make_session_factory
from settings import Settings, get_settings
from temporal_client import connect

log = logging.getLogger(__name__)

_PYSPUR_PREFIXES = ("/wf", "/run", "/node", "/api/wf", "/api/run", "/api/node")


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
        await upgrade_async(settings.effective_database_url)
        engine = make_engine(settings.effective_database_url, settings.db_pool_size)
        app.state.settings = settings
        app.state.sessions = make_session_factory(engine)
        app.state.temporal = await connect(settings)
        async with contextlib.AsyncExitStack() as stack:
            if settings.api_embedded_worker:
                app.state.embedded_worker = await stack.enter_async_context(_embedded_worker(app, settings))
            yield
        await engine.dispose()

    app = FastAPI(title="Durable Runs API", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    app.include_router(meta.health_router)
    for prefix in ("", "/api"):
        app.include_router(workflows.router, prefix=prefix)
        app.include_router(runs.wf_router, prefix=prefix)
        app.include_router(runs.run_router, prefix=prefix)
        app.include_router(meta.node_router, prefix=prefix)
    app.add_middleware(TrailingSlash)
    return app


@contextlib.asynccontextmanager
async def _embedded_worker(app: FastAPI, settings: Settings) -> AsyncIterator[object]:
    """A worker inside the API process lets starts be eager: the first workflow task runs in the start
    call itself instead of a round trip through the task queue. User code still runs in sandbox processes."""
    async with sandbox_pool(settings) as pool:
        worker = build_worker(app.state.temporal, settings, app.state.sessions, pool)
        async with worker:
            yield worker
