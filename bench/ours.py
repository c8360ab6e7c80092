"""Our service, started by the same `devstack.py` that `make run` uses, in a throwaway data directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from bench.http_load import create_workflow, make_run_sender, measure, new_client, verify_run
from bench.ports import free_port
from bench.stats import OURS, Measurement

ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def our_stack(**env_overrides: str) -> AsyncIterator[tuple[str, str]]:
    """Yields (base_url, api_key) of a fresh `make run` stack; stops it (Ctrl-C) on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        port, tport, uiport = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(
            DATA_DIR=f"{tmp}/d",
            PORT=str(port),
            TEMPORAL_ADDRESS=f"127.0.0.1:{tport}",
            TEMPORAL_UI_PORT=str(uiport),
        )
        env.update(env_overrides)
        log = Path(tmp) / "devstack.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "devstack.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient() as probe:
                for _ in range(600):
                    if proc.poll() is not None:
                        raise RuntimeError(f"devstack exited: {log.read_text()[-2000:]}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await probe.get(f"{base}/health")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
                else:
                    raise TimeoutError("our stack did not become healthy")
            key = (Path(tmp) / "d" / "admin-api-key").read_text().strip()
            print(f"[bench] ours: stack up at {base}", flush=True)
            yield base, key
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def bench_ours(n_seq: int, n_conc: int, conc: int, warmup: int, **env: str) -> list[Measurement]:
    note = " ".join(f"{k}={v}" for k, v in env.items()) or "defaults"
    async with our_stack(**env) as (base, key), new_client(conc) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        workflow_id = await create_workflow(client, base)
        await verify_run(client, base, workflow_id)
        send = make_run_sender(client, f"{base}/wf/{workflow_id}/run/")
        seq, par = await measure(OURS, send, n_seq, n_conc, conc, warmup, f"POST /wf/{{id}}/run/ ({note})")
    return [seq, par]
