"""The pool's handle on one sandbox child, forked for it by the zygote and used for one request.

The pool owns the child's pipes from the start (it made them and handed the
other ends to the zygote), so the request can be written while the zygote is
still forking. The zygote later hands over a pidfd (``attach``) and, once it has
reaped the child, the wait status (``set_status``). Killing goes through the
pidfd, which cannot hit a recycled pid, and works without the zygote's help.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal

from activities.sandbox import child_main


def pidfd_host_pid(pidfd: int) -> int | None:
    """The pid, as this process sees it, of the process a pidfd refers to (None once gone)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as fh:
            for line in fh:
                if line.startswith("Pid:"):
                    pid = int(line.split()[1])
                    return pid if pid > 0 else None
    except (OSError, ValueError, IndexError):
        pass
    return None


class ChildProcess:
    """Non-blocking pipe I/O with one child plus its lifecycle as the zygote reports it.

    ``exited`` resolves to a Popen-style return code (negative: killed by that
    signal). If the zygote could not fork the child, ``failure`` says why; if the
    zygote died first, ``lost`` is set; either way ``exited`` then resolves too.
    """

    def __init__(
        self,
        request_id: int,
        pipes: tuple[int, int, int, int],
        *,
        stderr_keep: int,
        group_kill: bool,
        workdir_root: str | None,
    ) -> None:
        self.request_id = request_id
        self._in, self._out, self._err, self._setup = pipes
        self._group_kill = group_kill  # no pid namespace: kill the child's process group too
        self._workdir_root = workdir_root
        self._loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = self._loop.create_future()
        self.failure: str | None = None
        self.lost = False
        self._pidfd: int | None = None
        self._host_pid: int | None = None
        self._kill_requested = False
        self._closed = False
        self._setup_seen: bool | None = None
        self._stderr = bytearray()
        self._stderr_keep = stderr_keep
        self._stderr_closed: asyncio.Future[None] = self._loop.create_future()
        for fd in pipes:
            os.set_blocking(fd, False)
        # Always drain stderr, so a chatty child never blocks on a full pipe.
        self._loop.add_reader(self._err, self._on_stderr)

    # --- reports from the zygote -------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._pidfd is not None

    def attach(self, pidfd: int) -> None:
        """The zygote forked the child; ``pidfd`` is ours to keep."""
        if self._closed:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
            return
        self._pidfd = pidfd
        if self._kill_requested:
            self.kill()

    def set_status(self, wait_status: int) -> None:
        if not self.exited.done():
            self.exited.set_result(os.waitstatus_to_exitcode(wait_status))

    def set_failed(self, message: str) -> None:
        self.failure = message
        self.set_status(signal.SIGKILL)

    def set_lost(self) -> None:
        self.lost = True
        self.set_status(signal.SIGKILL)

    # --- state ---------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    @property
    def inner_pid(self) -> int | None:
        """Host pid of the child (it is pid 1 inside its own pid namespace)."""
        if self._host_pid is None and self._pidfd is not None and not self.exited.done():
            self._host_pid = pidfd_host_pid(self._pidfd)
        return self._host_pid

    def setup_done(self) -> bool:
        """True if the child finished its sandbox set-up (it wrote the marker on its set-up
        pipe); asked once the child has ended, so it never needs a wake-up of its own."""
        if self._setup_seen is None and not self._closed:
            try:
                self._setup_seen = os.read(self._setup, 1) == child_main.SETUP_DONE
            except BlockingIOError:
                self._setup_seen = False
            except OSError:
                return False
        return bool(self._setup_seen)

    def stderr_text(self) -> str:
        return bytes(self._stderr).decode("utf-8", "replace")

    async def stderr_settled(self, grace_seconds: float) -> None:
        await asyncio.wait({self._stderr_closed}, timeout=grace_seconds)

    # --- I/O -------------------------------------------------------------------------------

    def _on_stderr(self) -> None:
        try:
            chunk = os.read(self._err, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self._err)
            if not self._stderr_closed.done():
                self._stderr_closed.set_result(None)
            return
        self._stderr += chunk
        if len(self._stderr) > self._stderr_keep:
            del self._stderr[: len(self._stderr) - self._stderr_keep]

    async def _ready(self, fd: int, writing: bool) -> None:
        """Wait until ``fd`` is ready or the child has exited."""
        waiter: asyncio.Future[None] = self._loop.create_future()

        def wake(*_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        (self._loop.add_writer if writing else self._loop.add_reader)(fd, wake)
        self.exited.add_done_callback(wake)
        try:
            await waiter
        finally:
            (self._loop.remove_writer if writing else self._loop.remove_reader)(fd)
            self.exited.remove_done_callback(wake)

    async def read_exactly(self, size: int) -> bytes:
        """Read ``size`` bytes of the child's output; EOFError if it ends first."""
        data = bytearray()
        while len(data) < size:
            try:
                chunk = os.read(self._out, size - len(data))
            except BlockingIOError:
                # Anything written before exit is already in the pipe, so once the
                # child is gone an empty pipe means there is nothing more to come.
                if self.exited.done():
                    raise EOFError from None
                await self._ready(self._out, writing=False)
                continue
            if not chunk:
                raise EOFError
            data += chunk
        return bytes(data)

    async def write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._in, view) :]
            except BlockingIOError:
                if self.exited.done():
                    raise BrokenPipeError from None
                await self._ready(self._in, writing=True)

    # --- ending ----------------------------------------------------------------------------

    def kill(self) -> None:
        self._kill_requested = True  # if the zygote has not reported the fork yet, kill on attach
        if self._pidfd is None or self.exited.done():
            return
        pid = self.inner_pid if self._group_kill else None
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        if pid is not None:
            # Without a pid namespace, processes the child started are only reachable
            # through its process group (it called setsid).
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    async def dispose(self, grace_seconds: float) -> None:
        """Kill, wait for the zygote to reap, close our ends, delete any work directory."""
        try:
            self.kill()
            await asyncio.wait({self.exited}, timeout=grace_seconds)
        finally:
            self._close()
            if self._workdir_root is not None:
                # In a thread: user code may have left many files behind.
                await asyncio.to_thread(shutil.rmtree, self._workdir_root, True)

    def discard(self) -> None:
        """Close at once, for a child the zygote never received a request for."""
        self._close()
        if self._workdir_root is not None:
            shutil.rmtree(self._workdir_root, ignore_errors=True)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._err)
        for fd in (self._in, self._out, self._err, self._setup, self._pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pidfd = None
