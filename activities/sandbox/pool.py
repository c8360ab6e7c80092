"""A warm pool of sandboxed Python children, each used for exactly one user function.

This module owns the parent side's policy: the limits and error types, choosing
the isolation, keeping the pool warm, the one-shot exchange with a child,
wall-time and output-size enforcement, mapping how a child ended to a
``SandboxError`` kind and validating the result against ``output_schema``.
What runs inside the child, its argv and the per-process handle live in ``child.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from activities.sandbox import child

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_SECONDS = 30.0
REAP_TIMEOUT_SECONDS = 5.0
STDERR_KEEP_BYTES = 16 * 1024
# Kinds a child may report about itself; anything else in an error frame is forged.
_CHILD_KINDS = frozenset({"user_error", "bad_output", "memory_limit"})
_SCHEMA_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    alias: (label, accepted)
    for label, aliases, accepted in (
        ("string", ("string", "str"), (str,)),
        ("integer", ("integer", "int"), (int,)),
        ("number", ("number", "float"), (int, float)),
        ("boolean", ("boolean", "bool"), (bool,)),
        ("list", ("list", "array"), (list,)),
        ("dict", ("dict", "object"), (dict,)),
    )
    for alias in aliases
}


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 60.0
    cpu_seconds: int = 60
    memory_mb: int = 512
    output_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"sandbox limit {field.name} must be positive")

    def lowered_by(self, other: SandboxLimits | dict[str, Any] | None) -> SandboxLimits:
        """Field-wise minimum: a node's configuration may only tighten the service limits."""
        if other is None:
            return self
        values = dataclasses.asdict(other) if isinstance(other, SandboxLimits) else dict(other)
        unknown = set(values) - {field.name for field in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown sandbox limits: {sorted(unknown)}")
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if value is not None:
                current = getattr(self, name)
                changes[name] = min(current, type(current)(value))
        return dataclasses.replace(self, **changes)


class SandboxError(Exception):
    """A user function did not produce a valid result; ``kind`` says why: one of
    timeout, cpu_limit, memory_limit, output_too_large, crashed, user_error,
    bad_output, unavailable."""

    def __init__(self, kind: str, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.stderr = stderr  # bounded tail of the child's stderr (user print() output lands here)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SandboxError, (self.kind, self.message), {"stderr": self.stderr})


def validate_output(result: dict[str, Any], schema: dict[str, str]) -> None:
    for name, type_name in schema.items():
        if name not in result:
            raise SandboxError("bad_output", f"Output validation error: missing field '{name}'")
        known = _SCHEMA_TYPES.get(str(type_name).lower())
        if known is None:
            continue
        label, accepted = known
        value = result[name]
        # bool is an int subclass in Python but not an integer/number in a schema.
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            got = "null" if value is None else type(value).__name__
            raise SandboxError(
                "bad_output", f"Output validation error: field '{name}' expected {label}, got {got}"
            )


class SandboxPool:
    def __init__(self, *, python: str | None, isolation: str, pool_size: int, limits: SandboxLimits) -> None:
        if isolation not in ("auto", "namespaces", "none"):
            raise ValueError(f"isolation must be auto, namespaces or none, not {isolation!r}")
        if pool_size < 0:
            raise ValueError("pool_size must be >= 0")
        self._python = python
        self._isolation = isolation
        self._pool_size = pool_size
        self._limits = limits
        self._effective: str | None = None if isolation == "auto" else isolation
        self._argv: list[str] = []
        self._idle: deque[child.ChildProcess] = deque()
        self._busy: set[child.ChildProcess] = set()
        self._fill_tasks: set[asyncio.Task[None]] = set()
        self._reap_tasks: set[asyncio.Task[None]] = set()
        self._spawning = 0
        self._started = False
        self._closed = False

    @property
    def effective_isolation(self) -> str:
        if self._effective is None:
            raise RuntimeError("effective_isolation is decided by start()")
        return self._effective

    @property
    def running_pids(self) -> frozenset[int]:
        """Host pids of the interpreters currently executing user code."""
        return frozenset(c.inner_pid for c in self._busy if c.inner_pid is not None)

    async def start(self) -> None:
        if self._closed:
            raise SandboxError("unavailable", "sandbox pool is closed")
        if self._started:
            return
        interpreter = child.choose_interpreter(self._python)
        unshare, setpriv = child.find_tool("unshare"), child.find_tool("setpriv")
        probe: child.ChildProcess | None = None
        if self._isolation != "none":
            if os.geteuid() == 0 and unshare and setpriv:
                self._argv = child.child_argv(interpreter, namespaces=True, unshare=unshare, setpriv=setpriv)
                self._effective = "namespaces"
                try:
                    probe = await self._spawn()
                except SandboxError as exc:
                    if self._isolation == "namespaces":
                        raise
                    log.warning(
                        "sandbox: namespace isolation unusable, falling back to none: %s", exc.message
                    )
            elif self._isolation == "namespaces":
                raise SandboxError("unavailable", "namespace isolation needs root and unshare/setpriv")
        if probe is None:
            self._argv = child.child_argv(interpreter, namespaces=False, unshare=None, setpriv=None)
            self._effective = "none"
            probe = await self._spawn()
        self._started = True
        if self._pool_size == 0:
            self._retire(probe)
            return
        self._idle.append(probe)
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self._pool_size - 1)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, child.ChildProcess):
                self._idle.append(result)
        for result in results:
            if isinstance(result, BaseException):
                await self.close()
                raise result

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._retire(self._idle.popleft())
        for busy in self._busy:
            busy.kill()  # their run() sees the death, reports "unavailable" and retires them
        for task in self._fill_tasks:
            task.cancel()
        while self._fill_tasks or self._reap_tasks:
            await asyncio.gather(*self._fill_tasks, *self._reap_tasks, return_exceptions=True)

    async def run(
        self,
        code: str,
        inputs: dict[str, Any],
        *,
        output_schema: dict[str, str] | None = None,
        limits: SandboxLimits | None = None,
    ) -> dict[str, Any]:
        if self._closed or not self._started:
            raise SandboxError("unavailable", "sandbox pool is not running")
        lim = self._limits.lowered_by(limits)
        request = {
            "code": code,
            "inputs": inputs,
            "limits": {"cpu_seconds": lim.cpu_seconds, "memory_mb": lim.memory_mb},
        }
        line = json.dumps(request, default=str).encode() + b"\n"
        worker = await self._acquire()
        self._busy.add(worker)
        try:
            tag, payload = await self._exchange(worker, line, lim)
        finally:
            self._busy.discard(worker)
            self._retire(worker)
            # Refilling only now keeps the fork/exec of the replacement (which blocks
            # the event loop for a moment) out of the latency of this run.
            self._refill()
        return self._decode(worker, tag, payload, lim, output_schema)

    async def _acquire(self) -> child.ChildProcess:
        while self._idle:
            candidate = self._idle.popleft()
            if candidate.proc.returncode is None:
                return candidate
            self._retire(candidate)
        return await self._spawn()

    def _refill(self) -> None:
        if self._closed:
            return
        for _ in range(self._pool_size - len(self._idle) - self._spawning):
            self._spawning += 1
            self._track(self._fill_tasks, self._fill_one())

    async def _fill_one(self) -> None:
        try:
            worker = await self._spawn()
        except SandboxError as exc:
            log.warning("sandbox: could not refill the warm pool: %s", exc.message)
            return
        finally:
            self._spawning -= 1
        if self._closed:
            self._retire(worker)
        else:
            self._idle.append(worker)

    def _track(self, tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _spawn(self) -> child.ChildProcess:
        namespaces = self._effective == "namespaces"
        root, workdir = child.make_workdir(namespaces)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                cwd=workdir,
                start_new_session=True,
            )
        except BaseException as exc:
            await asyncio.to_thread(shutil.rmtree, root, True)
            if isinstance(exc, OSError):
                raise SandboxError("unavailable", f"could not start a sandbox process: {exc}") from exc
            raise
        worker = child.ChildProcess(proc=proc, root=root, namespaces=namespaces)
        worker.start_stderr_drain(STDERR_KEEP_BYTES)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(SPAWN_TIMEOUT_SECONDS):
                ready = await proc.stdout.readexactly(1)
        except (TimeoutError, asyncio.IncompleteReadError):
            ready = b""
        except BaseException:
            self._retire(worker)
            raise
        if ready != child.READY:
            self._retire(worker)
            await worker.stderr_settled(2.0)
            detail = worker.stderr_text().strip()[-2000:] or f"exit status {proc.returncode}"
            raise SandboxError("unavailable", f"sandbox process failed to start: {detail}")
        worker.attach_inner()
        return worker

    async def _exchange(
        self, worker: child.ChildProcess, line: bytes, lim: SandboxLimits
    ) -> tuple[bytes, bytes]:
        proc = worker.proc
        assert proc.stdin is not None and proc.stdout is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(lim.wall_seconds):
                try:
                    proc.stdin.write(line)
                    await proc.stdin.drain()
                    header = await proc.stdout.readexactly(child.HEADER_LEN)
                    tag, size = header[:1], int.from_bytes(header[1:], "big")
                    cap = lim.output_bytes if tag == child.TAG_RESULT else child.MAX_ERROR_BYTES
                    if tag == child.TAG_RESULT and size > cap:
                        worker.kill()
                        raise SandboxError(
                            "output_too_large",
                            f"Python node output of {size} bytes exceeds the limit of {cap} bytes",
                        )
                    if tag not in (child.TAG_RESULT, child.TAG_ERROR) or size > cap:
                        worker.kill()
                        raise SandboxError("bad_output", "Python node wrote a malformed result frame")
                    return tag, await proc.stdout.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    await proc.wait()
                    await worker.stderr_settled(1.0)
        except TimeoutError:
            worker.kill()
            raise SandboxError(
                "timeout",
                f"Python node exceeded its wall-time limit of {float(lim.wall_seconds)} s",
                stderr=worker.stderr_text(),
            ) from None
        raise self._death_error(worker, lim, loop.time() - started)

    def _death_error(self, worker: child.ChildProcess, lim: SandboxLimits, elapsed: float) -> SandboxError:
        code = worker.proc.returncode
        stderr = worker.stderr_text()
        signo = -code if code is not None and code < 0 else None
        if worker.namespaces and code == 1 and "sigprocmask unblock failed" in stderr:
            # util-linux unshare re-raises its child's fatal signal on itself, but cannot
            # do so for SIGKILL and exits 1 with this message instead.
            signo = signal.SIGKILL
        if self._closed:
            return SandboxError("unavailable", "sandbox pool was closed during the run", stderr=stderr)
        cpu_possible = elapsed * (os.cpu_count() or 1) >= lim.cpu_seconds
        if code == child.EXIT_CPU or signo == signal.SIGXCPU or (signo == signal.SIGKILL and cpu_possible):
            message = f"Python node exceeded its CPU-time limit of {lim.cpu_seconds} s"
            return SandboxError("cpu_limit", message, stderr=stderr)
        if code == child.EXIT_MEMORY:
            message = f"Python node exceeded its memory limit of {lim.memory_mb} MB"
            return SandboxError("memory_limit", message, stderr=stderr)
        if signo is not None:
            try:
                name = signal.Signals(signo).name
            except ValueError:
                name = f"signal {signo}"
            hint = " (possibly out of memory)" if signo == signal.SIGKILL else ""
            return SandboxError("crashed", f"Python node crashed: killed by {name}{hint}", stderr=stderr)
        message = f"Python node crashed: exited with code {code} without returning a result"
        return SandboxError("crashed", message, stderr=stderr)

    def _decode(
        self,
        worker: child.ChildProcess,
        tag: bytes,
        payload: bytes,
        lim: SandboxLimits,
        output_schema: dict[str, str] | None,
    ) -> dict[str, Any]:
        stderr = worker.stderr_text()
        try:
            decoded = json.loads(payload)
        except ValueError:
            raise SandboxError("bad_output", "Python node wrote a malformed result", stderr=stderr) from None
        if tag == child.TAG_ERROR:
            kind = decoded.get("kind") if isinstance(decoded, dict) else None
            if kind not in _CHILD_KINDS:
                raise SandboxError("bad_output", "Python node wrote a malformed error frame", stderr=stderr)
            message = str(decoded.get("message", ""))
            if kind == "memory_limit":
                message = f"Python node exceeded its memory limit of {lim.memory_mb} MB"
            raise SandboxError(kind, message, stderr=stderr)
        if not isinstance(decoded, dict):
            raise SandboxError("bad_output", "Python node must return a dict", stderr=stderr)
        if output_schema:
            validate_output(decoded, output_schema)
        return decoded

    def _retire(self, worker: child.ChildProcess) -> None:
        worker.kill()
        self._track(self._reap_tasks, worker.dispose(REAP_TIMEOUT_SECONDS))
