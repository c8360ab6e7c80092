"""Install, start and prepare a PySpur 0.1.18 server for the benchmark.

PySpur lives in its own virtual environment (``bench/.pyspur-venv``) because it pins a large, conflicting
dependency set (~200 packages). ``click<8.2`` is required: typer 0.9 crashes on click 8.2+ (upstream #294).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import venv
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from bench.http_load import create_workflow, verify_run
from bench.ports import free_port
from bench.temporal_dev import stop_process_group

BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = BENCH_DIR / ".pyspur-venv"
PROJECT_DIR = BENCH_DIR / ".pyspur-project"
PYSPUR_REQUIREMENTS = ("pyspur==0.1.18", "click<8.2")
INSTALL_TIMEOUT_S = 15 * 60
READY_TIMEOUT_S = 120.0


def _log(msg: str) -> None:
    print(f"[pyspur] {msg}", flush=True)


def _venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def _is_installed() -> bool:
    """True if pyspur 0.1.18 and a compatible click are importable in the venv."""
    if not _venv_python().exists():
        return False
    check = (
        "import importlib.metadata as m, click, pyspur.cli.main;"
        "assert m.version('pyspur') == '0.1.18', m.version('pyspur');"
        "assert tuple(int(p) for p in m.version('click').split('.')[:2]) < (8, 2)"
    )
    proc = subprocess.run(
        [str(_venv_python()), "-c", check], capture_output=True, text=True, timeout=120, check=False
    )
    return proc.returncode == 0


def ensure_installed() -> Path:
    """Create the PySpur venv and install pyspur into it unless already present. Returns the CLI path."""
    cli = VENV_DIR / "bin" / "pyspur"
    if _is_installed():
        _log(f"already installed in {VENV_DIR}")
        return cli
    if not _venv_python().exists():
        _log(f"creating venv {VENV_DIR} (base python {sys.base_prefix})")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV_DIR)
    log_path = VENV_DIR / "pip-install.log"
    _log(f"pip install {' '.join(PYSPUR_REQUIREMENTS)} (~200 packages, a few minutes; log {log_path})")
    started = time.monotonic()
    cmd = [str(_venv_python()), "-m", "pip", "install", "--quiet", *PYSPUR_REQUIREMENTS]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while True:
            try:
                proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - started
                if elapsed > INSTALL_TIMEOUT_S:
                    proc.kill()
                    proc.wait()
                    raise RuntimeError(
                        f"pyspur install timed out after {elapsed:.0f}s; see {log_path}"
                    ) from None
                _log(f"  still installing... {elapsed:.0f}s")
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-20:])
        raise RuntimeError(f"pyspur install failed (exit {proc.returncode}); see {log_path}:\n{tail}")
    if not _is_installed():
        raise RuntimeError(f"pyspur installed but not importable from {VENV_DIR}; see {log_path}")
    _log(f"installed in {time.monotonic() - started:.0f}s")
    return cli


def init_project(
    cli: Path, port: int, project_dir: Path = PROJECT_DIR, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """``pyspur init`` the project dir once, (re)write its ``.env`` and reset the SQLite DB. Returns the env."""
    project_dir = project_dir.resolve()
    if not (project_dir / ".env.example").exists():
        _log(f"pyspur init {project_dir}")
        subprocess.run(
            [str(cli), "init", str(project_dir)], check=True, capture_output=True, text=True, timeout=120
        )
    env = {
        "PYSPUR_HOST": "127.0.0.1",
        "PYSPUR_PORT": str(port),
        "DISABLE_ANONYMOUS_TELEMETRY": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PROJECT_ROOT": str(project_dir),
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "False",
        **(extra_env or {}),
    }
    (project_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    # A fresh database per session keeps runs comparable (PySpur never prunes runs/tasks).
    for suffix in ("", "-wal", "-shm", "-journal"):
        (project_dir / f"pyspur.db{suffix}").unlink(missing_ok=True)
    return env


@contextlib.asynccontextmanager
async def pyspur_server(
    project_dir: Path = PROJECT_DIR, extra_env: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, str]]:
    """Install if needed, serve PySpur (SQLite) on a free port, create the benchmark workflow.

    Yields ``(base_url, workflow_id)``; ``base_url`` has no ``/api`` suffix. The server's whole process
    group is killed on exit. PySpur's SQLite file (default pragmas, ~10 commits per run) lives in
    ``project_dir``, so its latency depends on that filesystem's fsync cost (tmpfs is roughly 2x faster).
    """
    cli = await asyncio.to_thread(ensure_installed)
    port = free_port()
    project_dir = project_dir.resolve()
    env = init_project(cli, port, project_dir, extra_env)
    base_url = f"http://127.0.0.1:{port}"
    log_path = project_dir / "server.log"
    cmd = [str(cli), "serve", "--sqlite", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=project_dir,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            started = time.monotonic()
            await _wait_ready(client, base_url, proc, log_path)
            _log(f"server ready at {base_url} in {time.monotonic() - started:.1f}s (pid {proc.pid})")
            workflow_id = await create_workflow(client, f"{base_url}/api")
            payload = await verify_run(client, f"{base_url}/api", workflow_id)
            _log(f"verified /api/wf/{workflow_id}/run/ x=21 -> {payload}")
        yield base_url, workflow_id
    finally:
        stop_process_group(proc)
        _log("server stopped")


async def _wait_ready(
    client: httpx.AsyncClient, base_url: str, proc: subprocess.Popen[bytes], log_path: Path
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"pyspur serve exited with {proc.returncode}; log {log_path}:\n{tail}")
        with contextlib.suppress(httpx.TransportError):
            resp = await client.get(f"{base_url}/api/wf/")
            if resp.status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"pyspur not ready after {READY_TIMEOUT_S:.0f}s; log {log_path}")
        await asyncio.sleep(0.5)


async def _main() -> None:
    async with pyspur_server() as (base_url, workflow_id):
        _log(f"serving {base_url} workflow {workflow_id}; stopping")


if __name__ == "__main__":
    asyncio.run(_main())
