"""`GET /health` (no credentials) and `GET /node/supported_types/`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import PrincipalDep
from db.session import ping
from workflows import nodes

health_router = APIRouter(tags=["meta"])
node_router = APIRouter(prefix="/node", tags=["nodes"])


async def _check(name: str, probe: Any) -> str | None:
    try:
        await asyncio.wait_for(probe, 3.0)
    except Exception as exc:  # any failure means "not reachable"; the message says which and why
        return f"{name}: {type(exc).__name__}: {exc}"[:300]
    return None


@health_router.get("/health")
async def health(request: Request) -> JSONResponse:
    problems = [
        p
        for p in await asyncio.gather(
            _check("database", ping(request.app.state.sessions)),
            _check("temporal", request.app.state.temporal.service_client.check_health()),
        )
        if p
    ]
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "temporal": "ok"})


@node_router.get("/supported_types/")
async def supported_types(_: PrincipalDep) -> dict[str, list[dict[str, Any]]]:
    return nodes.supported_types()
