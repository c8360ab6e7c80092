"""The deployment under test, on loopback: PostgreSQL (pgserver), the Temporal dev server, API and
worker processes, each restartable on its own port and data directory after a SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import devstack
from bench.ports import free_port

ROOT = Path(__file__).resolve().parent.parent

# Encrypts tenants' provider keys in the soak stack (a fixed Fernet key, for this throwaway stack only).
PROVIDER_KEYS_SECRET = "gLDsSqTkkyCV1F1OdMfFtt6EhbIS_MfmDyucBdtwP7M="


@dataclass
class Proc:
    """One process of the deployment the chaos loop may kill, freeze and restart."""

    name: str
    kind: str  # api | worker | temporal | postgres
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    def pids(self, deployment: Deployment) -> list[int]:
        """Every process that makes up this one (PostgreSQL's postmaster and its backends)."""
        if self.kind == "postgres":
            pid = deployment.pg_pid()
            return [] if pid is None else [pid, *descendants(pid)]
        if self.popen is None or self.popen.poll() is not None:
            return []
        return [self.popen.pid, *descendants(self.popen.pid)]


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of `pid` (from /proc: PostgreSQL's backends, the sandbox's children)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses; the parent pid follows the last ')'.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Deployment:
    tmp: Path
    llm_base: str
    n_api: int = 2
    n_workers: int = 2
    database_url: str = ""
    temporal_port: int = 0
    procs: dict[str, Proc] = field(default_factory=dict)
    _pg: Any = None

    # -- start -----------------------------------------------------------------------------------------

    def start(self) -> None:
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        (self.tmp / "logs").mkdir(exist_ok=True)
        self._pg = devstack.start_postgres(self.tmp / "pg")
        self.database_url = devstack.postgres_url(self._pg)
        from db.migrate import upgrade

        upgrade(self.database_url)
        self.procs["postgres"] = Proc("postgres", "postgres")
        self.temporal_port = free_port()
        self.procs["temporal"] = Proc("temporal", "temporal", self.temporal_port)
        self.start_proc(self.procs["temporal"])
        for i in range(self.n_workers):
            self.procs[f"worker{i}"] = Proc(f"worker{i}", "worker")
            self.start_proc(self.procs[f"worker{i}"])
        for i in range(self.n_api):
            self.procs[f"api{i}"] = Proc(f"api{i}", "api", free_port())
            self.start_proc(self.procs[f"api{i}"])

    @property
    def api_bases(self) -> list[str]:
        return [f"http://127.0.0.1:{p.port}" for p in self.procs.values() if p.kind == "api"]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "TEMPORAL_"))}
        env.update(
            DATABASE_URL=self.database_url,
            DATA_DIR=str(self.tmp / "data"),
            TEMPORAL_ADDRESS=f"127.0.0.1:{self.temporal_port}",
            TEMPORAL_TASK_QUEUE="soak",
            API_EMBEDDED_WORKER="false",
            RECONCILE_INTERVAL_SECONDS="5",
            NODE_HEARTBEAT_TIMEOUT_SECONDS="3",
            LLM_HEARTBEAT_TIMEOUT_SECONDS="5",
            RUN_BLOCKING_TIMEOUT_SECONDS="20",
            BATCH_CHUNK_ROWS="8",
            PROVIDER_KEYS_SECRET=PROVIDER_KEYS_SECRET,
            OPENAI_API_KEY="sk-soak",
            OPENAI_API_BASE=self.llm_base,
            LOG_LEVEL="WARNING",
        )
        return env

    def start_proc(self, proc: Proc) -> None:
        log = self.tmp / "logs" / f"{proc.name}.log"
        if proc.kind == "postgres":
            # pgserver starts the postmaster again on the same data directory and socket.
            self._pg.ensure_postgres_running()
            return
        if proc.kind == "temporal":
            cmd = devstack.temporal_command(self.tmp / "temporal.db", self.temporal_port, None)
            proc.popen = devstack.spawn(cmd, log)
            devstack.wait_for_port("127.0.0.1", self.temporal_port, proc=proc.popen)
            return
        if proc.kind == "worker":
            proc.popen = devstack.spawn([sys.executable, "worker.py"], log, self.env())
            return
        assert proc.port is not None
        cmd = [
            sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
            "--port", str(proc.port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        # Like a supervisor: an API that exits at start (PostgreSQL away during its migration check)
        # is started again until it listens.
        deadline = time.monotonic() + 180
        while True:
            proc.popen = devstack.spawn(cmd, log, self.env())
            try:
                devstack.wait_for_port("127.0.0.1", proc.port, timeout=120, proc=proc.popen)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def pg_pid(self) -> int | None:
        pid_file = self.tmp / "pg" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            return pid if alive(pid) else None
        return None

    # -- faults ----------------------------------------------------------------------------------------

    def signal(self, proc: Proc, sig: int) -> int:
        """Send `sig` to every process of `proc`; how many received it."""
        sent = 0
        for pid in proc.pids(self):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                sent += 1
        return sent

    def kill(self, proc: Proc) -> None:
        self.signal(proc, signal.SIGKILL)
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(10)
        if proc.kind == "postgres":
            # The backends exit once they notice their postmaster is gone; a restart waits for that.
            deadline = time.monotonic() + 15
            while self.pg_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)

    def ensure_all_running(self) -> list[str]:
        """Resume frozen processes and restart dead ones (the end of the chaos); returns what it revived."""
        revived = []
        for proc in self.procs.values():
            self.signal(proc, signal.SIGCONT)
            alive = self.pg_pid() is not None if proc.kind == "postgres" else bool(proc.pids(self))
            if not alive:
                self.start_proc(proc)
                revived.append(proc.name)
        return revived

    def stop(self) -> None:
        for name in [n for n in self.procs if n.startswith(("api", "worker"))] + ["temporal"]:
            proc = self.procs.get(name)
            if proc is not None and proc.popen is not None:
                self.signal(proc, signal.SIGCONT)
                devstack.stop(proc.popen)
        if self._pg is not None:
            pg = self.procs.get("postgres")
            if pg is not None:
                self.signal(pg, signal.SIGCONT)
            devstack.stop_postgres(self._pg)
