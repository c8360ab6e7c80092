"""The sandbox pool: one zygote that forks a fresh isolated child for every user function.

This module owns the parent side's policy: choosing the isolation, keeping a
zygote running (restarting it if it dies), the one-shot exchange with a child,
wall-time and output-size enforcement, mapping how a child ended to a
``SandboxError`` kind and validating the result against ``output_schema``.
The zygote and the child runtime are ``zygote_main.py`` and ``child_main.py``;
the pool's handles on them are ``zygote.py`` and ``process.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import shutil
import signal
from collections.abc import Coroutine
from typing import Any

from activities.sandbox import child, child_main, seccomp_filter
from activities.sandbox.limits import SandboxError, SandboxLimits, validate_output
from activities.sandbox.process import ChildProcess
from activities.sandbox.zygote import Zygote, ZygoteUnavailable
from telemetry.metrics import get_metrics

__all__ = ["SandboxError", "SandboxLimits", "SandboxPool", "validate_output"]

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_SECONDS = 30.0
REAP_TIMEOUT_SECONDS = 5.0
# A zygote that keeps dying is restarted at most this often (runs still retry on demand).
RESTART_INTERVAL_SECONDS = 1.0
# Kinds a child may report about itself; anything else in an error frame is forged.
_CHILD_KINDS = frozenset({"user_error", "bad_output", "memory_limit"})


class SandboxPool:
    """Runs user functions in sandboxed one-shot children, forked on demand by one zygote
    (about a millisecond each, so there is nothing to keep warm)."""

    def __init__(self, *, python: str | None, isolation: str, limits: SandboxLimits) -> None:
        if isolation not in ("auto", "namespaces", "none"):
            raise ValueError(f"isolation must be auto, namespaces or none, not {isolation!r}")
        self._python = python
        self._isolation = isolation
        self._limits = limits
        self._effective: str | None = None if isolation == "auto" else isolation
        self._interpreter = ""
        self._seccomp: bytes | None = None
        self._zygote: Zygote | None = None
        self._restart_lock = asyncio.Lock()
        self._last_launch = 0.0
        self._busy: set[ChildProcess] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._closed = False

    @property
    def effective_isolation(self) -> str:
        if self._effective is None:
            raise RuntimeError("effective_isolation is decided by start()")
        return self._effective

    @property
    def seccomp_active(self) -> bool:
        """True if children load the seccomp filter (always with namespaces; without, where
        libseccomp could build it)."""
        return self._seccomp is not None

    @property
    def running_pids(self) -> frozenset[int]:
        """Host pids of the children currently executing user code."""
        return frozenset(pid for c in self._busy if (pid := c.inner_pid) is not None)

    async def start(self) -> None:
        if self._closed:
            raise SandboxError("unavailable", "sandbox pool is closed")
        if self._started:
            return
        self._interpreter = child.choose_interpreter(self._python)
        seccomp_problem = await self._build_seccomp()
        if self._isolation != "none":
            if os.geteuid() == 0 and child.find_tool("unshare") and child.find_tool("setpriv"):
                try:
                    if seccomp_problem is not None:
                        raise SandboxError("unavailable", seccomp_problem)
                    self._zygote = await self._launch(namespaces=True)
                except SandboxError as exc:
                    if self._isolation == "namespaces":
                        raise
                    log.warning(
                        "sandbox: namespace isolation unusable, falling back to none: %s", exc.message
                    )
            elif self._isolation == "namespaces":
                raise SandboxError("unavailable", "namespace isolation needs root and unshare/setpriv")
        if self._zygote is None:
            self._zygote = await self._launch(namespaces=False)
        self._started = True

    async def _build_seccomp(self) -> str | None:
        """Build the children's seccomp filter; the reason if it cannot be had."""
        try:
            self._seccomp = await asyncio.to_thread(seccomp_filter.compiled_filter)
        except (RuntimeError, OSError, ImportError) as exc:
            self._seccomp = None
            return f"no seccomp filter (libseccomp): {exc}"
        return None

    async def close(self) -> None:
        self._closed = True
        for busy in self._busy:
            busy.kill()  # their run() sees the death, reports "unavailable" and retires them
        if self._zygote is not None:
            await self._zygote.close()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
        line = json.dumps({"code": code, "inputs": inputs}, default=str).encode() + b"\n"
        worker = await self._spawn(lim)
        self._busy.add(worker)
        try:
            tag, payload = await self._exchange(worker, line, lim)
        finally:
            self._busy.discard(worker)
            self._retire(worker)
        result: dict[str, Any] = self._decode(worker, tag, payload, lim, output_schema)
        return result

    async def run_many(
        self,
        code: str,
        inputs: list[dict[str, Any]],
        *,
        output_schema: dict[str, str] | None = None,
        limits: SandboxLimits | None = None,
    ) -> list[dict[str, Any] | SandboxError]:
        """Call the function once per inputs in one sandboxed child (one spawn for many rows of
        the same node of the same batch). Returns each call's result, or its error.

        Raises:
            SandboxError: the child as a whole failed (wall time, memory, CPU, crash): no result.
        """
        if self._closed or not self._started:
            raise SandboxError("unavailable", "sandbox pool is not running")
        lim = self._limits.lowered_by(limits)
        line = json.dumps({"code": code, "batch": inputs}, default=str).encode() + b"\n"
        # The frame holds every result: each may use the per-call output limit.
        frame_lim = dataclasses.replace(lim, output_bytes=lim.output_bytes * len(inputs) + 1024)
        worker = await self._spawn(lim)
        self._busy.add(worker)
        try:
            tag, payload = await self._exchange(worker, line, frame_lim)
        finally:
            self._busy.discard(worker)
            self._retire(worker)
        decoded = self._decode(worker, tag, payload, lim, None, many=True)
        if not isinstance(decoded, list) or len(decoded) != len(inputs):
            raise SandboxError("bad_output", "Python node wrote a malformed batch result")
        return [self._outcome(item, lim, output_schema) for item in decoded]

    @staticmethod
    def _outcome(
        item: Any, lim: SandboxLimits, output_schema: dict[str, str] | None
    ) -> dict[str, Any] | SandboxError:
        if isinstance(item, dict) and isinstance(item.get("ok"), dict):
            result: dict[str, Any] = item["ok"]
            size = len(json.dumps(result, ensure_ascii=False).encode())
            if size > lim.output_bytes:
                return SandboxError(
                    "output_too_large",
                    f"Python node output of {size} bytes exceeds the limit of {lim.output_bytes} bytes",
                )
            try:
                if output_schema:
                    validate_output(result, output_schema)
            except SandboxError as err:
                return err
            return result
        error = item.get("error") if isinstance(item, dict) else None
        if isinstance(error, dict) and error.get("kind") in ("user_error", "bad_output"):
            return SandboxError(str(error["kind"]), str(error.get("message", "")))
        if isinstance(error, dict) and error.get("kind") == "memory_limit":
            message = SandboxPool._memory_message(lim, str(error.get("message", "")))
            return SandboxError("memory_limit", message)
        return SandboxError("bad_output", "Python node wrote a malformed batch result")

    # --- the zygote ----------------------------------------------------------------------

    async def _launch(self, *, namespaces: bool) -> Zygote:
        argv_for = functools.partial(
            child.zygote_argv,
            self._interpreter,
            namespaces=namespaces,
            unshare=child.find_tool("unshare"),
            setpriv=child.find_tool("setpriv"),
            seccomp_program=self._seccomp,
        )
        self._last_launch = asyncio.get_running_loop().time()
        try:
            zygote = await Zygote.launch(
                lambda fd: argv_for(control_fd=fd), namespaces=namespaces, ready_seconds=SPAWN_TIMEOUT_SECONDS
            )
        except ZygoteUnavailable as exc:
            raise SandboxError("unavailable", str(exc)) from exc
        zygote.on_lost = self._on_zygote_lost
        self._effective = "namespaces" if namespaces else "none"
        return zygote

    async def _live_zygote(self) -> Zygote:
        zygote = self._zygote
        if zygote is not None and zygote.alive:
            return zygote
        async with self._restart_lock:
            if self._closed:
                raise SandboxError("unavailable", "sandbox pool is closed")
            if self._zygote is None or not self._zygote.alive:
                self._zygote = await self._launch(namespaces=self._effective == "namespaces")
            return self._zygote

    def _on_zygote_lost(self, zygote: Zygote) -> None:
        if self._closed or zygote is not self._zygote:
            return
        log.warning("sandbox: the zygote died, restarting it; its stderr: %s", zygote.stderr_tail())
        self._track(self._restart(zygote))

    async def _restart(self, dead: Zygote) -> None:
        await dead.close()
        since = asyncio.get_running_loop().time() - self._last_launch
        if since < RESTART_INTERVAL_SECONDS:
            await asyncio.sleep(RESTART_INTERVAL_SECONDS - since)
        try:
            await self._live_zygote()
        except SandboxError as exc:
            log.warning("sandbox: could not restart the zygote: %s", exc.message)

    # --- one run ---------------------------------------------------------------------------

    async def _spawn(self, lim: SandboxLimits) -> ChildProcess:
        zygote = await self._live_zygote()
        # Without namespaces there is no private tmpfs: the child gets a directory of ours.
        workdir = None if zygote.namespaces else child.make_workdir()
        address_space_mb, tmpfs_mb = lim.memory_split(private_tmpfs=zygote.namespaces)
        try:
            spawned = await zygote.spawn(
                cpu_seconds=lim.cpu_seconds, memory_mb=address_space_mb, tmpfs_mb=tmpfs_mb, workdir=workdir
            )
        except ZygoteUnavailable as exc:
            if workdir is not None:
                shutil.rmtree(workdir[0], ignore_errors=True)
            raise SandboxError("unavailable", str(exc)) from exc
        m = get_metrics()
        m.sandbox_spawns.inc()
        m.sandbox_pool_size.inc()
        return spawned

    async def _exchange(self, worker: ChildProcess, line: bytes, lim: SandboxLimits) -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(lim.wall_seconds):
                try:
                    # The pipe takes the request while the zygote is still forking.
                    await worker.write_all(line)
                    header = await worker.read_exactly(child_main.HEADER_LEN)
                    tag, size = header[:1], int.from_bytes(header[1:], "big")
                    cap = lim.output_bytes if tag == child_main.TAG_RESULT else child_main.MAX_ERROR_BYTES
                    if tag == child_main.TAG_RESULT and size > cap:
                        worker.kill()
                        raise SandboxError(
                            "output_too_large",
                            f"Python node output of {size} bytes exceeds the limit of {cap} bytes",
                        )
                    if tag not in (child_main.TAG_RESULT, child_main.TAG_ERROR) or size > cap:
                        worker.kill()
                        raise SandboxError("bad_output", "Python node wrote a malformed result frame")
                    return tag, await worker.read_exactly(size)
                except (EOFError, BrokenPipeError):
                    # The child closed its output without a full frame: wait for it to end
                    # (still under the wall clock: it may have closed the fd and kept going).
                    await asyncio.shield(worker.exited)
                    await worker.stderr_settled(1.0)
        except TimeoutError:
            worker.kill()
            if not worker.started or worker.lost or worker.failure is not None:
                raise self._unavailable(worker) from None
            raise SandboxError(
                "timeout",
                f"Python node exceeded its wall-time limit of {float(lim.wall_seconds)} s",
                stderr=worker.stderr_text(),
            ) from None
        raise self._death_error(worker, lim, loop.time() - started)

    def _unavailable(self, worker: ChildProcess) -> SandboxError:
        stderr = worker.stderr_text()
        if self._closed:
            return SandboxError("unavailable", "sandbox pool was closed during the run", stderr=stderr)
        if worker.lost:
            return SandboxError("unavailable", "sandbox zygote died during the run", stderr=stderr)
        if worker.failure is not None:
            message = f"could not start a sandbox process: {worker.failure}"
            return SandboxError("unavailable", message, stderr=stderr)
        if not worker.started:
            message = "the sandbox zygote did not start the process in time"
            return SandboxError("unavailable", message, stderr=stderr)
        detail = stderr.strip()[-2000:] or f"exit status {worker.returncode}"
        return SandboxError("unavailable", f"sandbox process failed to start: {detail}", stderr=stderr)

    def _death_error(self, worker: ChildProcess, lim: SandboxLimits, elapsed: float) -> SandboxError:
        """Why a child ended without a frame. Until it wrote its set-up marker, any exit
        is the sandbox's failure; after it, exit codes are user code's (os._exit(n))
        except those the runtime itself uses when they fit what happened."""
        code = worker.returncode
        stderr = worker.stderr_text()
        if self._closed or worker.lost or worker.failure is not None or not worker.setup_done():
            return self._unavailable(worker)
        signo = -code if code is not None and code < 0 else None
        cpu_possible = elapsed * (os.cpu_count() or 1) >= lim.cpu_seconds
        if (
            (code == child_main.EXIT_CPU and cpu_possible)
            or signo == signal.SIGXCPU
            or (signo == signal.SIGKILL and cpu_possible)
        ):
            message = f"Python node exceeded its CPU-time limit of {lim.cpu_seconds} s"
            return SandboxError("cpu_limit", message, stderr=stderr)
        if code == child_main.EXIT_MEMORY:
            message = f"Python node exceeded its memory limit of {lim.memory_mb} MB"
            return SandboxError("memory_limit", message, stderr=stderr)
        if signo is not None:
            try:
                name = signal.Signals(signo).name
            except ValueError:
                name = f"signal {signo}"
            hint = " (possibly out of memory)" if signo == signal.SIGKILL else ""
            return SandboxError("crashed", f"Python node crashed: killed by {name}{hint}", stderr=stderr)
        message = f"Python node crashed: user code exited with status {code} without returning a result"
        return SandboxError("crashed", message, stderr=stderr)

    def _decode(
        self,
        worker: ChildProcess,
        tag: bytes,
        payload: bytes,
        lim: SandboxLimits,
        output_schema: dict[str, str] | None,
        *,
        many: bool = False,
    ) -> Any:
        stderr = worker.stderr_text()
        try:
            decoded = json.loads(payload)
        except ValueError:
            raise SandboxError("bad_output", "Python node wrote a malformed result", stderr=stderr) from None
        if tag == child_main.TAG_ERROR:
            kind = decoded.get("kind") if isinstance(decoded, dict) else None
            if kind not in _CHILD_KINDS:
                raise SandboxError("bad_output", "Python node wrote a malformed error frame", stderr=stderr)
            message = str(decoded.get("message", ""))
            if kind == "memory_limit":
                message = self._memory_message(lim, message)
            raise SandboxError(kind, message, stderr=stderr)
        if many:
            return decoded
        if not isinstance(decoded, dict):
            raise SandboxError("bad_output", "Python node must return a dict", stderr=stderr)
        if output_schema:
            validate_output(decoded, output_schema)
        return decoded

    @staticmethod
    def _memory_message(lim: SandboxLimits, reported: str) -> str:
        message = f"Python node exceeded its memory limit of {lim.memory_mb} MB"
        if reported == child_main.TMPFS_FULL:
            tmpfs_mb = lim.memory_split(private_tmpfs=True)[1]
            message += f" (its /tmp and /dev/shm, {tmpfs_mb} MB of it, are full)"
        return message

    def _retire(self, worker: ChildProcess) -> None:
        get_metrics().sandbox_pool_size.dec()
        worker.kill()
        self._track(worker.dispose(REAP_TIMEOUT_SECONDS))

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
