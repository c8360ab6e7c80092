"""The API's HTTP metrics middleware (the request id is `api.errors.RequestId`'s)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.metrics import get_metrics


class ObserveRequests:
    """Counts requests by route *template* (`/wf/{workflow_id}/run/`, never the ids) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = get_metrics()
        start = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            # Unmatched paths share one label, so probes of random URLs add no series.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            m.http_requests.labels(method, route, str(status)).inc()
            m.http_latency.labels(method, route).observe(time.perf_counter() - start)
