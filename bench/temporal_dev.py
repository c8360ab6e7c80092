"""Start and stop a throwaway Temporal dev server tuned as `make run` tunes it (WAL, one partition, eager)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from bench.ports import free_port

TEMPORAL_CLI = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "temporal"
READY_TIMEOUT_S = 60.0

DEV_SERVER_FLAGS = (
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
    # Needed for request_eager_start=True to take effect (floor-eager variant).
    "--dynamic-config-value",
    "system.enableEagerWorkflowStart=true",
    "--log-level",
    "warn",
)


def stop_process_group(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM the process group led by ``proc`` (started with ``start_new_session=True``), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.asynccontextmanager
async def temporal_dev_server(cli: Path = TEMPORAL_CLI) -> AsyncIterator[str]:
    """Run ``temporal server start-dev`` on a free loopback port; yields ``host:port``."""
    with tempfile.TemporaryDirectory(prefix="bench-temporal-") as tmp:
        port = free_port()
        address = f"127.0.0.1:{port}"
        log_path = Path(tmp) / "server.log"
        cmd = [
            str(cli),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--db-filename",
            str(Path(tmp) / "t.db"),
            *DEV_SERVER_FLAGS,
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            await _wait_ready(address, proc, log_path)
            print(f"[temporal] dev server ready at {address} (pid {proc.pid})", flush=True)
            yield address
        finally:
            stop_process_group(proc)
            print("[temporal] dev server stopped", flush=True)


async def _wait_ready(address: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"temporal dev server exited {proc.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            client = await Client.connect(address)
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"temporal dev server not ready after {READY_TIMEOUT_S}s: {exc}") from exc
            await asyncio.sleep(0.25)
