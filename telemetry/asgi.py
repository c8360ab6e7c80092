"""The API's request middleware: a request id for the logs and the HTTP metrics."""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.logs import bind_ids
from telemetry.metrics import get_metrics

_HEADER = b"x-request-id"


class ObserveRequests:
    """Binds a request id (the caller's `X-Request-ID`, or a new one, echoed in the response) and
    counts requests by route *template* (`/wf/{workflow_id}/run/`, never the ids) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = get_metrics()
        start = time.perf_counter()
        given = dict(scope.get("headers") or ()).get(_HEADER)
        request_id = given.decode("latin-1")[:100] if given else uuid.uuid4().hex
        bind_ids(request_id=request_id)
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (_HEADER, request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            # Unmatched paths share one label, so probes of random URLs add no series.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            m.http_requests.labels(method, route, str(status)).inc()
            m.http_latency.labels(method, route).observe(time.perf_counter() - start)
