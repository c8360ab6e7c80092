"""Shared fixtures: a real PostgreSQL (pgserver) and a real Temporal dev server, started once per session.

The worker runs as a subprocess so tests can kill it; the API runs in-process through ASGI unless a
test needs to restart it, in which case it starts its own uvicorn process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import devstack
from db.session import make_engine, make_session_factory
from settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Encrypts tenants' provider keys in the test stack (a fixed Fernet key, for tests only).
PROVIDER_KEYS_SECRET = "gLDsSqTkkyCV1F1OdMfFtt6EhbIS_MfmDyucBdtwP7M="


@dataclass
class Stack:
    """The running backing services and how to (re)start the processes tests may kill."""

    tmp: Path
    database_url: str
    temporal_port: int
    task_queue: str
    temporal: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "data_dir": self.tmp / "data",
            "temporal_address": self.temporal_address,
            "temporal_task_queue": self.task_queue,
            "api_embedded_worker": False,
            "reconcile_interval_seconds": 1.0,
            "node_heartbeat_timeout_seconds": 2.0,
            "run_blocking_timeout_seconds": 60.0,
            # Small chunks, so batch tests cross chunk boundaries and continue-as-new.
            "batch_chunk_rows": 40,
            "provider_keys_secret": PROVIDER_KEYS_SECRET,
            # LLM provider stubs listen on loopback, which tenants' base URLs may not name otherwise.
            "llm_allowed_hosts": "127.0.0.1",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "TEMPORAL_"))}
        env.update(
            DATABASE_URL=self.database_url,
            DATA_DIR=str(self.tmp / "data"),
            TEMPORAL_ADDRESS=self.temporal_address,
            TEMPORAL_TASK_QUEUE=self.task_queue,
            RECONCILE_INTERVAL_SECONDS="1",
            NODE_HEARTBEAT_TIMEOUT_SECONDS="2",
            API_EMBEDDED_WORKER="false",
            PROVIDER_KEYS_SECRET=PROVIDER_KEYS_SECRET,
            LLM_ALLOWED_HOSTS="127.0.0.1",
        )
        env.update(extra)
        return env

    def start_temporal(self) -> None:
        cmd = devstack.temporal_command(self.tmp / "temporal.db", self.temporal_port, None)
        self.temporal = devstack.spawn(cmd, self.tmp / "temporal.log")
        devstack.wait_for_port("127.0.0.1", self.temporal_port, proc=self.temporal)

    def kill_temporal(self) -> None:
        if self.temporal is not None:
            devstack.stop(self.temporal, sig=9)

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = devstack.spawn([sys.executable, "worker.py"], self.tmp / "worker.log", self.env())
        self.workers.append(proc)
        return proc

    def kill_workers(self) -> None:
        for proc in self.workers:
            devstack.stop(proc, sig=9)
        self.workers.clear()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # pgserver uses a unix socket in its data dir; keep the path short (sun_path is 108 bytes).
    tmp = Path(tempfile.mkdtemp(prefix="dr-", dir="/tmp"))
    (tmp / "data").mkdir()
    pg = devstack.start_postgres(tmp / "pg")
    url = devstack.postgres_url(pg)
    from db.migrate import upgrade

    upgrade(url)
    s = Stack(tmp=tmp, database_url=url, temporal_port=free_port(), task_queue=f"test-{uuid.uuid4().hex[:8]}")
    s.start_temporal()
    s.start_worker()
    try:
        yield s
    finally:
        s.kill_workers()
        if s.temporal is not None:
            devstack.stop(s.temporal)
        devstack.stop_postgres(pg)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Tenant:
    key: str
    tenant_id: uuid.UUID
    user_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(database_url: str, role: str = "OWNER") -> Tenant:
    from db import accounts
    from db.session import make_engine, make_session_factory

    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            tenant = await accounts.create_tenant(session, f"t-{uuid.uuid4().hex[:10]}")
            user = await accounts.create_user(session, tenant.id, "owner@example.com", accounts.Role(role))
            _, key = await accounts.create_api_key(session, user)
            return Tenant(key, tenant.id, user.id)
    finally:
        await engine.dispose()


async def add_user(database_url: str, tenant: Tenant, role: str) -> Tenant:
    """Another user (with its own key) in an existing tenant."""
    from db import accounts
    from db.models import User
    from db.session import make_engine, make_session_factory

    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            user: User = await accounts.create_user(
                session, tenant.tenant_id, f"{uuid.uuid4().hex[:8]}@example.com", accounts.Role(role)
            )
            _, key = await accounts.create_api_key(session, user)
            return Tenant(key, tenant.tenant_id, user.id)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def tenant(stack: Stack) -> Tenant:
    return await make_tenant(stack.database_url)


@pytest.fixture(scope="session")
async def other_tenant(stack: Stack) -> Tenant:
    return await make_tenant(stack.database_url)


@pytest.fixture(scope="session")
async def app_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    app = create_app(stack.settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=90) as client:
            yield client


@pytest.fixture
async def api(app_client: httpx.AsyncClient, tenant: Tenant) -> httpx.AsyncClient:
    app_client.headers.update(tenant.headers)
    return app_client


async def wait_until(predicate: Any, within: float = 30.0, interval: float = 0.2) -> Any:
    """Poll an async predicate until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s (last value {value!r})")
        await asyncio.sleep(interval)


async def reaches(api: httpx.AsyncClient, run_id: str, status: str, within: float = 30) -> dict[str, Any]:
    """Poll `GET /run/{id}/` until the run has `status`; returns the run."""

    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.get(f"/run/{run_id}/")).json()
        return body if body["status"] == status else None

    result: dict[str, Any] = await wait_until(check, within=within)
    return result


@contextlib.contextmanager
def api_process(stack: Stack, port: int, **extra_env: str) -> Iterator[subprocess.Popen[bytes]]:
    env = stack.env(HOST="127.0.0.1", PORT=str(port), **extra_env)
    proc = devstack.spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stack.tmp / "api.log",
        env,
    )
    try:
        devstack.wait_for_port("127.0.0.1", port, proc=proc)
        yield proc
    finally:
        devstack.stop(proc)


@pytest.fixture(scope="session")
def live_api(stack: Stack) -> Iterator[str]:
    """A real HTTP server (uvicorn subprocess) for clients that cannot use ASGI, such as ksapi."""
    port = free_port()
    with api_process(stack, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
async def db(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the stack's database, for tests that check or set stored state directly."""
    engine = make_engine(stack.database_url, pool_size=2)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()
