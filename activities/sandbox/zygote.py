"""The pool's handle on one zygote process: launch, control channel, child bookkeeping, death.

One zygote per pool forks every sandbox child (see ``zygote_main.py`` for what
it does and the message protocol). This side sends fork requests with the
child's pipe ends attached, routes the zygote's reports to the matching
``ChildProcess`` and, when the zygote dies, marks every child it owned as lost
so that their runs fail at once instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from typing import Any

from activities.sandbox.process import ChildProcess, pidfd_host_pid

log = logging.getLogger(__name__)

STDERR_KEEP_BYTES = 16 * 1024


class ZygoteUnavailable(Exception):
    """The zygote could not be started, or is gone."""


class Zygote:
    def __init__(self, popen: subprocess.Popen[bytes], control: socket.socket, namespaces: bool) -> None:
        assert popen.stderr is not None
        self.namespaces = namespaces
        self._popen = popen
        self._control = control
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count()
        self._children: dict[int, ChildProcess] = {}
        self._ready: asyncio.Future[int] = self._loop.create_future()  # resolves to the zygote's pidfd
        self._pidfd: int | None = None
        self.pid: int | None = None  # host pid of the zygote
        self.alive = True
        self._closed = False
        self.on_lost: Callable[[Zygote], None] | None = None
        self._stderr = bytearray()
        self._stderr_fd = popen.stderr.fileno()
        self._exit_fd = os.pidfd_open(popen.pid)
        self._send_lock = asyncio.Lock()
        self.reaped: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(self._stderr_fd, False)
        self._loop.add_reader(self._stderr_fd, self._on_stderr)
        self._loop.add_reader(control.fileno(), self._on_message)
        # The launcher (unshare, or the zygote itself) exiting means the zygote is gone.
        self._loop.add_reader(self._exit_fd, self._on_launcher_exit)

    @classmethod
    async def launch(
        cls, argv_for: Callable[[int], list[str]], *, namespaces: bool, ready_seconds: float
    ) -> Zygote:
        """Start a zygote and wait until its self-test passed."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # Blocks for one fork/exec per zygote start, which is rare; plain Popen
            # rather than asyncio subprocess transports, which can hang at loop shutdown
            # (CPython gh-125502).
            popen = subprocess.Popen(  # noqa: ASYNC220
                argv_for(theirs.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env={},
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise ZygoteUnavailable(f"could not start the sandbox zygote: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        zygote = cls(popen, ours, namespaces)
        try:
            async with asyncio.timeout(ready_seconds):
                pidfd = await asyncio.shield(zygote._ready)
        except (TimeoutError, ZygoteUnavailable) as exc:
            await asyncio.sleep(0.05)  # let its last words reach the stderr pipe
            zygote._on_stderr()
            detail = zygote.stderr_tail() or str(exc) or "no answer"
            await zygote.close()
            raise ZygoteUnavailable(f"sandbox zygote failed to start: {detail}") from None
        except BaseException:
            await zygote.close()
            raise
        zygote.pid = pidfd_host_pid(pidfd)
        return zygote

    def stderr_tail(self) -> str:
        return bytes(self._stderr).decode("utf-8", "replace").strip()[-2000:]

    # --- children ------------------------------------------------------------------------

    async def spawn(
        self, *, cpu_seconds: int, memory_mb: int, tmpfs_mb: int, workdir: tuple[str, str] | None
    ) -> ChildProcess:
        """Ask for a child; returns at once with its pipes, before the fork is reported.

        ``memory_mb`` is its address-space limit, ``tmpfs_mb`` the size of its /tmp and
        /dev/shm (namespaces only); ``workdir`` (mode none only) is (root to delete
        afterwards, the child's cwd).
        """
        if not self.alive:
            raise ZygoteUnavailable("the sandbox zygote is gone")
        made: list[int] = []
        try:
            for _ in range(4):
                made.extend(os.pipe2(os.O_CLOEXEC))
            if workdir is not None:
                made.append(os.open(workdir[1], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as exc:
            for fd in made:
                os.close(fd)
            raise ZygoteUnavailable(f"could not set up a sandbox process: {exc}") from exc
        # (read, write) pairs for stdin, stdout, stderr, the set-up pipe, then the optional cwd.
        ours = [made[1], made[2], made[4], made[6]]
        theirs = [made[0], made[3], made[5], made[7], *made[8:]]
        request_id = next(self._ids)
        child = ChildProcess(
            request_id,
            (ours[0], ours[1], ours[2], ours[3]),
            stderr_keep=STDERR_KEEP_BYTES,
            group_kill=not self.namespaces,
            workdir_root=None if workdir is None else workdir[0],
        )
        self._children[request_id] = child
        request = {"id": request_id, "cpu": cpu_seconds, "mem": memory_mb, "tmp": tmpfs_mb}
        message = json.dumps(request).encode()
        try:
            await self._send(message, theirs)
        except BaseException:
            self._children.pop(request_id, None)
            child.set_lost()
            child.discard()
            raise
        finally:
            # The zygote has its own copies now (in flight, or received).
            for fd in theirs:
                os.close(fd)
        return child

    async def _send(self, message: bytes, fds: list[int]) -> None:
        async with self._send_lock:
            while True:
                if not self.alive:
                    raise ZygoteUnavailable("the sandbox zygote is gone")
                try:
                    socket.send_fds(self._control, [message], fds)
                    return
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._lose(f"control channel failed: {exc}")
                    raise ZygoteUnavailable("the sandbox zygote is gone") from exc
                writable: asyncio.Future[None] = self._loop.create_future()
                self._loop.add_writer(self._control.fileno(), writable.set_result, None)
                try:
                    await writable
                finally:
                    self._loop.remove_writer(self._control.fileno())

    def _on_message(self) -> None:
        while self.alive:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self._control, 65536, 4, socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lose(f"control channel failed: {exc}")
                return
            if not data:
                self._lose("the sandbox zygote exited")
                return
            self._dispatch(json.loads(data), fds)

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        op = message.get("op")
        if op == "ready" and fds and not self._ready.done():
            self._pidfd = fds[0]
            self._ready.set_result(fds[0])
            return
        if op == "error":
            if not self._ready.done():
                self._ready.set_exception(ZygoteUnavailable(str(message.get("message"))))
            return
        child = self._children.get(message.get("id", -1))
        if op == "started" and fds:
            if child is None:
                # Nobody waits for it any more: it must not run.
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(fds[0], signal.SIGKILL)
                os.close(fds[0])
            else:
                child.attach(fds[0])
        elif op == "failed" and child is not None:
            self._children.pop(child.request_id, None)
            child.set_failed(str(message.get("message")))
        elif op == "exit" and child is not None:
            self._children.pop(child.request_id, None)
            child.set_status(int(message["status"]))
        else:
            log.warning("sandbox: unexpected message from the zygote: %r", message)
            for fd in fds:
                os.close(fd)

    # --- death -----------------------------------------------------------------------------

    def _on_stderr(self) -> None:
        try:
            chunk = os.read(self._stderr_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self._stderr_fd)
            return
        self._stderr += chunk
        del self._stderr[:-STDERR_KEEP_BYTES]

    def _on_launcher_exit(self) -> None:
        self._loop.remove_reader(self._exit_fd)
        self._popen.poll()
        self._lose(f"the sandbox zygote exited with status {self._popen.returncode}")
        if not self.reaped.done():
            self.reaped.set_result(None)

    def _lose(self, reason: str) -> None:
        if not self.alive:
            return
        self.alive = False
        self._loop.remove_reader(self._control.fileno())
        if not self._ready.done():
            self._ready.set_exception(ZygoteUnavailable(reason))
        self._kill()
        children, self._children = self._children, {}
        for child in children.values():
            child.set_lost()
        if self.on_lost is not None:
            self.on_lost(self)

    def _kill(self) -> None:
        # Only the zygote itself, never its launcher: unshare has to live on to reap it, or
        # it would be left to an init that may never reap. With namespaces the zygote is
        # pid 1 of its pid namespace, so killing it kills every child; without, the
        # children die of their parent-death signal.
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            return
        if self._popen.returncode is not None:
            return  # reaped already: its pid may belong to someone else now
        target = self._popen.pid
        if self.namespaces:
            # Not ready yet, so no pidfd: the zygote is unshare's only child.
            with (
                contextlib.suppress(OSError, ValueError, IndexError),
                open(f"/proc/{target}/task/{target}/children") as fh,
            ):
                target = int(fh.read().split()[0])
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Kill the zygote (and so its children) and reap it."""
        if self._closed:
            return
        self._closed = True
        # Children first, while the zygote lives to reap them: without namespaces they
        # are not in a pid namespace that would take them along.
        children = list(self._children.values())
        for child in children:
            child.kill()
        if children and self.alive:
            await asyncio.wait({child.exited for child in children}, timeout=grace_seconds)
        self._lose("the sandbox pool closed")
        await asyncio.wait({self.reaped}, timeout=grace_seconds)
        if not self.reaped.done() and self._popen.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(self._popen.pid, signal.SIGKILL)  # last resort
            await asyncio.wait({self.reaped}, timeout=grace_seconds)
        self._loop.remove_reader(self._exit_fd)
        self._loop.remove_reader(self._stderr_fd)
        if self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # retrieved: a failed start is reported by launch()
        for fd in (self._pidfd, self._exit_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pidfd = None
        for closable in (self._control, self._popen.stderr):
            if closable is not None:
                closable.close()
