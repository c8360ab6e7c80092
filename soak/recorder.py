"""Every HTTP exchange of the load, recorded with its time, API process and outcome, so the checks can
judge each 5xx against the faults in force when it was sent."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

# A client of a service with two API processes fails over to the other one and honours Retry-After.
RETRY_WITHIN_SECONDS = 45.0


@dataclass
class Exchange:
    t0: float
    t1: float
    api: int
    route: str
    status: int | None  # None: no HTTP answer (connection refused, reset, timed out)
    retry_after: bool
    error: str = ""


class Recorder:
    def __init__(self, bases: list[str], key: str, rng: random.Random) -> None:
        self.bases = bases
        self.rng = rng
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=64, keepalive_expiry=5)
        self.clients = [
            httpx.AsyncClient(base_url=b, headers=headers, timeout=40, limits=limits) for b in bases
        ]
        self.log: list[Exchange] = []

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def once(
        self, method: str, path: str, route: str, api: int | None = None, **kw: Any
    ) -> httpx.Response | None:
        """One attempt on one API process (a random one unless given); recorded whatever happens."""
        api = self.rng.randrange(len(self.clients)) if api is None else api
        t0 = time.time()
        try:
            resp = await self.clients[api].request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.log.append(Exchange(t0, time.time(), api, route, None, False, type(exc).__name__))
            return None
        said = resp.text[:160] if resp.status_code >= 500 else ""
        self.log.append(
            Exchange(t0, time.time(), api, route, resp.status_code, "retry-after" in resp.headers, said)
        )
        return resp

    async def call(self, method: str, path: str, route: str, **kw: Any) -> httpx.Response | None:
        """Like a careful client: on no answer or a 503, wait and try again (either API process)."""
        deadline = time.monotonic() + RETRY_WITHIN_SECONDS
        api = self.rng.randrange(len(self.clients))
        while True:
            resp = await self.once(method, path, route, api, **kw)
            if resp is None:
                api = (api + 1) % len(self.clients)
            if resp is not None and resp.status_code != 503:
                return resp
            if time.monotonic() > deadline:
                return resp
            wait = 1.0
            if resp is not None:
                try:
                    wait = float(resp.headers.get("retry-after", "1"))
                except ValueError:
                    wait = 1.0
            await asyncio.sleep(min(wait, 5.0) * self.rng.uniform(0.5, 1.0))
