"""The LLM provider stub of the tests (tests/llm_stub.py), made flaky: some requests get a 429 with
`Retry-After`, some a 500, some a slow answer; and every request is recorded under the soak token
found in its prompt, so the checks can tell whether a call that was answered was made again.

    python -m soak.flaky_llm PORT SEED   (serves until killed; GET /_calls returns the record)
"""

from __future__ import annotations

import json
import random
import re
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.llm_stub import Fault, LlmStub

TOKEN = re.compile(r"soak-[0-9a-f]{32}")


class FlakyStub(LlmStub):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        # token -> [(unix time answered, HTTP status; 499 when the caller left first)]
        self.by_token: dict[str, list[tuple[float, int]]] = {}

    def _pick(self) -> Fault:
        roll = self.rng.random()
        if roll < 0.15:
            return Fault(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"})
        if roll < 0.25:
            return Fault(500, {"error": {"message": "provider fault"}})
        if roll < 0.35:
            return Fault(delay=self.rng.uniform(2.0, 6.0))
        return Fault(delay=0.05)

    async def _chat(self, request: Request) -> Response:
        with self._lock:
            self.faults.append(self._pick())
        response = await super()._chat(request)
        found = TOKEN.search(json.dumps(await request.json()))
        if found:
            with self._lock:
                self.by_token.setdefault(found.group(), []).append((time.time(), response.status_code))
        return response

    async def _calls(self, _request: Request) -> Response:
        with self._lock:
            return JSONResponse(self.by_token)

    def app(self) -> Starlette:
        app = super().app()
        app.router.routes.append(Route("/_calls", self._calls, methods=["GET"]))
        return app


def main() -> None:
    port, seed = int(sys.argv[1]), int(sys.argv[2])
    stub = FlakyStub(seed)
    config = uvicorn.Config(stub.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
