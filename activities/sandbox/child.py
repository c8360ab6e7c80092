"""The sandbox child: the bootstrap source it runs and the argv that launches it.

This module owns everything that happens on the far side of the pipe (the
bootstrap, as a string handed to ``python -c`` so that no file has to be
readable by ``nobody``) and how a child is launched (interpreter choice,
namespace/privilege-dropping wrappers). The pool in ``pool.py`` owns the
parent side: spawning, the wire protocol reader, limits and error mapping.

Wire protocol (child -> parent, on a private dup of the original stdout):
  * one byte ``R`` once the bootstrap is imported and waiting (warm);
  * then exactly one frame: a tag byte (``R`` result, ``E`` error) followed by
    an 8-byte big-endian length and that many bytes of UTF-8 JSON.
Parent -> child is one JSON line on stdin: ``{"code", "inputs", "limits"}``.

It also owns the parent's handle on one running child (``ChildProcess``): how
it is killed and how its remains (process, pidfd, work directory) are disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
from dataclasses import dataclass, field

NOBODY_UID = 65534
NOBODY_GID = 65534

# Exit codes the child uses when it cannot (or must not) write a frame.
EXIT_CPU = 152  # 128 + SIGXCPU: soft CPU limit reached
EXIT_MEMORY = 153  # MemoryError even while reporting the MemoryError

READY = b"R"
TAG_RESULT = b"R"
TAG_ERROR = b"E"
HEADER_LEN = 9
MAX_ERROR_BYTES = 64 * 1024

USER_FILENAME = "<user_code>"

BOOTSTRAP = r"""
import ast, builtins, gc, json, linecache, os, resource, signal, sys, textwrap, traceback

# The parent reads frames from a private copy of stdout; fd 1 is pointed at stderr
# so that print() in user code cannot corrupt the protocol.
_OUT = os.dup(1)
os.dup2(2, 1)


def _write(data):
    view = memoryview(data)
    while view:
        view = view[os.write(_OUT, view):]


def _frame(tag, payload):
    _write(tag + len(payload).to_bytes(8, "big") + payload)


def _error(kind, message):
    _frame(b"E", json.dumps({"kind": kind, "message": message[:16000]}).encode("utf-8", "replace"))


# Pre-encoded so that reporting an out-of-memory condition needs no allocation.
_MEM_FRAME = b"E" + @MEM_FRAME@


def _on_xcpu(signum, frame):
    os._exit(@EXIT_CPU@)


class InputModel(dict):
    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _wrap(value):
    if isinstance(value, dict):
        return InputModel((k, _wrap(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _lower(which, soft, hard=None):
    hard = soft if hard is None else hard
    _, cur_hard = resource.getrlimit(which)
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(which, (soft, hard))


def _apply_limits(lim):
    cpu = int(lim["cpu_seconds"])
    # Soft limit -> SIGXCPU -> clean exit code; hard limit is the backstop when the
    # handler cannot run (a long C call) and the kernel sends SIGKILL.
    _lower(resource.RLIMIT_CPU, cpu, cpu + 1)
    _lower(resource.RLIMIT_AS, int(lim["memory_mb"]) * 1024 * 1024)
    _lower(resource.RLIMIT_NOFILE, 64)
    _lower(resource.RLIMIT_NPROC, 256)
    _lower(resource.RLIMIT_FSIZE, 64 * 1024 * 1024)
    _lower(resource.RLIMIT_CORE, 0)


def _compile(src):
    src = textwrap.dedent(src)
    # Parsing the body on its own keeps user line numbers intact in tracebacks;
    # a module-level `return` is legal for the parser, only the compiler rejects it.
    body = ast.parse(src, "@USER_FILENAME@").body
    tree = ast.parse("def user_function(input_model):\n    pass\n")
    if body:
        tree.body[0].body = body
    linecache.cache["@USER_FILENAME@"] = (len(src), None, src.splitlines(True), "@USER_FILENAME@")
    scope = {"__name__": "__sandbox__", "__builtins__": builtins}
    exec(compile(tree, "@USER_FILENAME@", "exec"), scope)
    return scope["user_function"]


def _describe(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "@USER_FILENAME@":
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb, limit=-8))
    except Exception:
        text = type(exc).__name__
    try:
        summary = "%s: %s" % (type(exc).__name__, exc)
    except Exception:
        summary = type(exc).__name__
    if len(text) > 6000:
        text = text[:1000] + "\n...\n" + text[-5000:]
    return "Python node raised " + summary + "\n\n" + text


def _run(request):
    try:
        fn = _compile(request["code"])
        result = fn(_wrap(request["inputs"]))
    except MemoryError:
        return None
    except BaseException as exc:
        _error("user_error", _describe(exc))
        return True
    if not isinstance(result, dict):
        _error("bad_output", "Python node must return a dict, got %s" % type(result).__name__)
        return True
    try:
        payload = json.dumps(result, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except MemoryError:
        return None
    except Exception as exc:
        _error("bad_output", "Python node returned a value that is not JSON-serialisable: %s" % exc)
        return True
    _frame(b"R", payload)
    return True


def _main():
    signal.signal(signal.SIGXCPU, _on_xcpu)
    # Oversized files then fail with EFBIG (a user error) instead of killing us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _write(b"R")
    line = sys.stdin.buffer.readline()
    if not line:
        os._exit(0)
    request = json.loads(line)
    del line
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _apply_limits(request["limits"])
    done = _run(request)
    if done is None:
        # Out of memory: the exception (and its frames holding the memory) is gone now.
        gc.collect()
        try:
            _write(_MEM_FRAME)
        except BaseException:
            os._exit(@EXIT_MEMORY@)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(0)


_main()
"""


def _memory_frame() -> bytes:
    payload = b'{"kind": "memory_limit", "message": "Python node exceeded its memory limit"}'
    return len(payload).to_bytes(8, "big") + payload


def bootstrap_source() -> str:
    """The ``-c`` program for the child, with protocol constants filled in."""
    return (
        BOOTSTRAP.replace("@MEM_FRAME@", repr(_memory_frame()))
        .replace("@EXIT_CPU@", str(EXIT_CPU))
        .replace("@EXIT_MEMORY@", str(EXIT_MEMORY))
        .replace("@USER_FILENAME@", USER_FILENAME)
    )


def find_tool(name: str) -> str | None:
    """Locate a system binary without consulting $PATH (we read no environment)."""
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _nobody_may_execute(path: str) -> bool:
    st = os.stat(path)
    if st.st_uid == NOBODY_UID:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == NOBODY_GID:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def nobody_can_execute(path: str) -> bool:
    """True if uid/gid 65534 can reach and execute ``path`` (through its symlinks).

    Judged from mode bits, not by trying: we run as root, and root's access checks
    pass where nobody's fail (e.g. anything under the 0700 /root).
    """
    real = os.path.realpath(path)
    directories = {os.path.dirname(os.path.abspath(path)), os.path.dirname(real)}
    try:
        for directory in directories:
            while True:
                if not _nobody_may_execute(directory):
                    return False
                if directory == "/":
                    break
                directory = os.path.dirname(directory)
        return stat.S_ISREG(os.stat(real).st_mode) and _nobody_may_execute(real)
    except OSError:
        return False


def choose_interpreter(python: str | None) -> str:
    """The caller's interpreter, else the first candidate nobody can execute."""
    if python:
        return python
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable):
        if candidate and nobody_can_execute(candidate):
            return candidate
    return sys.executable


def child_argv(interpreter: str, *, namespaces: bool, unshare: str | None, setpriv: str | None) -> list[str]:
    """argv for one child; with namespaces it has no network, no view of other
    processes, no capabilities and runs as nobody."""
    python = [interpreter, "-I", "-S", "-c", bootstrap_source()]
    if not namespaces:
        return python
    if unshare is None or setpriv is None:
        raise RuntimeError("unshare/setpriv not found")
    return [
        unshare,
        *["--net", "--pid", "--ipc", "--fork", "--mount-proc", "--kill-child"],
        setpriv,
        f"--reuid={NOBODY_UID}",
        f"--regid={NOBODY_GID}",
        *["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"],
        # Changing uid clears the parent-death signal unshare armed; re-arm it so the
        # interpreter dies with its unshare wrapper.
        "--pdeathsig=SIGKILL",
        *python,
    ]


def make_workdir(namespaces: bool) -> tuple[str, str]:
    """(root to delete afterwards, fresh empty cwd for the child)."""
    # Every child runs as nobody, so one must not find another's cwd: the root is
    # root-owned 0711 (traversable, not listable) and the cwd name is random.
    root = tempfile.mkdtemp(prefix="sandbox-")
    workdir = os.path.join(root, secrets.token_hex(8))
    os.mkdir(workdir, 0o700)
    if namespaces:
        os.chown(workdir, NOBODY_UID, NOBODY_GID)
        os.chmod(root, 0o711)
    return root, workdir


@dataclass(eq=False)
class ChildProcess:
    """The parent's handle on one spawned child (used for at most one request)."""

    proc: asyncio.subprocess.Process
    root: str
    namespaces: bool
    stderr: bytearray = field(default_factory=bytearray)
    stderr_task: asyncio.Task[None] | None = None
    inner_pid: int | None = None  # host pid of the interpreter (under unshare: a grandchild)
    pidfd: int | None = None

    def start_stderr_drain(self, keep_bytes: int) -> None:
        # Always drain, so a chatty child never blocks on a full pipe; keep only the tail.
        async def drain(stream: asyncio.StreamReader) -> None:
            while chunk := await stream.read(65536):
                self.stderr += chunk
                if len(self.stderr) > keep_bytes:
                    del self.stderr[: len(self.stderr) - keep_bytes]

        assert self.proc.stderr is not None
        self.stderr_task = asyncio.get_running_loop().create_task(drain(self.proc.stderr))

    async def stderr_settled(self, grace_seconds: float) -> None:
        if self.stderr_task is not None:
            await asyncio.wait({self.stderr_task}, timeout=grace_seconds)

    def stderr_text(self) -> str:
        return bytes(self.stderr).decode("utf-8", "replace")

    def attach_inner(self) -> None:
        """Find the interpreter and pin it with a pidfd, which cannot hit a recycled pid."""
        pid: int | None = self.proc.pid
        if self.namespaces:
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                    pid = int(fh.read().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
        self.inner_pid = pid
        if pid is not None:
            with contextlib.suppress(OSError):
                self.pidfd = os.pidfd_open(pid)

    def kill(self) -> None:
        # Under unshare, killing only the interpreter lets unshare reap it and exit,
        # rather than orphaning a zombie onto whatever init we run under.
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        if self.proc.returncode is None and (self.pidfd is None or not self.namespaces):
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def dispose(self, grace_seconds: float) -> None:
        """Kill, reap and delete the work directory."""
        self.kill()
        try:
            try:
                await asyncio.wait_for(self.proc.wait(), grace_seconds)
            except TimeoutError:
                with contextlib.suppress(OSError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
            await self.stderr_settled(1.0)
            if self.stderr_task is not None:
                self.stderr_task.cancel()
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None
            # In a thread: user code may have left many files behind.
            await asyncio.to_thread(shutil.rmtree, self.root, True)
