"""The sandbox child's runtime: read one request, run the user's function, write one frame.

Standalone and stdlib-only: the zygote (``zygote_main.py``) compiles this source
into a namespace of its own at start-up, so every forked child already has it
(and the modules it imports) in memory, and calls ``serve_one`` in each child
once isolation and privilege dropping are done. The pool imports this module
only for the protocol constants; importing it does nothing else.

Wire protocol on the child's pipes:
  * parent -> child, stdin: one JSON line ``{"code", "inputs"}``, or ``{"code", "batch": [inputs, ...]}``
    to call the function once per inputs (the result frame then holds a list of
    ``{"ok": result}`` or ``{"error": {"kind", "message"}}``, one per inputs, in order);
  * child -> parent, the set-up pipe (fd 3): the byte ``S`` once isolation and limits
    are in place (from then on an exit may be user code's own), then closed;
  * child -> parent, a private dup of the original stdout: exactly one frame, a tag byte (``R`` result, ``E`` error) then an 8-byte
    big-endian length and that many bytes of UTF-8 JSON. Error payloads are
    ``{"kind", "message"}``.
"""

import ast
import builtins
import contextlib
import errno
import gc
import json
import linecache
import os
import resource
import signal
import sys
import textwrap
import traceback
import types
from typing import Any, NoReturn

# Exit codes the child uses when it cannot (or must not) write a frame.
EXIT_CPU = 152  # 128 + SIGXCPU: soft CPU limit reached
EXIT_MEMORY = 153  # MemoryError even while reporting the MemoryError
EXIT_SETUP = 154  # isolation or privilege dropping failed before any user code ran

TAG_RESULT = b"R"
TAG_ERROR = b"E"
HEADER_LEN = 9
MAX_ERROR_BYTES = 64 * 1024
USER_FILENAME = "<user_code>"

SETUP_DONE = b"S"
SETUP_FD = 3
# The message of a memory_limit error raised because the run's tmpfs (/tmp, /dev/shm) is full.
TMPFS_FULL = "tmpfs full"

_MEMORY_PAYLOAD = b'{"kind": "memory_limit", "message": "Python node exceeded its memory limit"}'
# Pre-encoded so that reporting an out-of-memory condition needs no allocation.
_MEMORY_FRAME = TAG_ERROR + len(_MEMORY_PAYLOAD).to_bytes(8, "big") + _MEMORY_PAYLOAD


class InputModel(dict[str, Any]):
    """The ``input_model`` argument: a dict whose keys also read as attributes."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return InputModel((k, _wrap(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class _Output:
    """The frame channel: a private fd, so print() in user code cannot corrupt it."""

    def __init__(self) -> None:
        self.fd = os.dup(1)
        os.dup2(2, 1)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def frame(self, tag: bytes, payload: bytes) -> None:
        self.write(tag + len(payload).to_bytes(8, "big") + payload)

    def error(self, kind: str, message: str) -> None:
        payload = json.dumps({"kind": kind, "message": message[:16000]})
        self.frame(TAG_ERROR, payload.encode("utf-8", "replace"))


def _on_xcpu(_signum: int, _frame: types.FrameType | None) -> None:
    os._exit(EXIT_CPU)


def _lower(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, cur_hard = resource.getrlimit(which)
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(which, (soft, hard))


def _apply_limits(cpu_seconds: int, memory_mb: int) -> None:
    # Soft limit -> SIGXCPU -> clean exit code; the hard limit is the backstop when
    # the handler cannot run (a long C call) and the kernel sends SIGKILL.
    _lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    _lower(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    _lower(resource.RLIMIT_NOFILE, 64)
    # Counted per real uid; each concurrently running child has a uid of its own.
    _lower(resource.RLIMIT_NPROC, 256)
    _lower(resource.RLIMIT_FSIZE, 64 * 1024 * 1024)
    _lower(resource.RLIMIT_CORE, 0)


def _compile(src: str) -> Any:
    src = textwrap.dedent(src)
    # Parsing the body on its own keeps user line numbers intact in tracebacks;
    # a module-level `return` is legal for the parser, only the compiler rejects it.
    body = ast.parse(src, USER_FILENAME).body
    tree = ast.parse("def user_function(input_model):\n    pass\n")
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    if body:
        function.body = body
    linecache.cache[USER_FILENAME] = (len(src), None, src.splitlines(True), USER_FILENAME)
    scope: dict[str, Any] = {"__name__": "__sandbox__", "__builtins__": builtins}
    exec(compile(tree, USER_FILENAME, "exec"), scope)
    return scope["user_function"]


def _describe(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != USER_FILENAME:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb, limit=-8))
    except Exception:
        text = type(exc).__name__
    try:
        summary = f"{type(exc).__name__}: {exc}"
    except Exception:
        summary = type(exc).__name__
    if len(text) > 6000:
        text = text[:1000] + "\n...\n" + text[-5000:]
    return "Python node raised " + summary + "\n\n" + text


# Set by serve_one when /tmp and /dev/shm are a tmpfs counted in the memory budget:
# running out of space there is running out of memory.
_tmpfs_in_budget = False


def _tmpfs_full(exc: BaseException) -> bool:
    return _tmpfs_in_budget and isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _run(out: _Output, request: dict[str, Any]) -> bool:
    """Run the user function and write its frame; False if memory ran out."""
    try:
        fn = _compile(request["code"])
        result = fn(_wrap(request["inputs"]))
    except MemoryError:
        return False
    except BaseException as exc:
        if _tmpfs_full(exc):
            out.error("memory_limit", TMPFS_FULL)
        else:
            out.error("user_error", _describe(exc))
        return True
    if not isinstance(result, dict):
        out.error("bad_output", f"Python node must return a dict, got {type(result).__name__}")
        return True
    try:
        payload = json.dumps(result, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except MemoryError:
        return False
    except Exception as exc:
        out.error("bad_output", f"Python node returned a value that is not JSON-serialisable: {exc}")
        return True
    out.frame(TAG_RESULT, payload)
    return True


def _call(fn: Any, inputs: Any) -> dict[str, Any]:
    """One call of a batch: ``{"ok": result}`` or ``{"error": ...}``; MemoryError propagates."""
    try:
        result = fn(_wrap(inputs))
    except MemoryError:
        raise
    except BaseException as exc:
        if _tmpfs_full(exc):
            return {"error": {"kind": "memory_limit", "message": TMPFS_FULL}}
        return {"error": {"kind": "user_error", "message": _describe(exc)[:16000]}}
    if not isinstance(result, dict):
        message = f"Python node must return a dict, got {type(result).__name__}"
        return {"error": {"kind": "bad_output", "message": message}}
    try:
        json.dumps(result, allow_nan=False)
    except MemoryError:
        raise
    except Exception as exc:
        message = f"Python node returned a value that is not JSON-serialisable: {exc}"
        return {"error": {"kind": "bad_output", "message": message}}
    return {"ok": result}


def _run_batch(out: _Output, request: dict[str, Any]) -> bool:
    """Compile once, call once per inputs, write one frame with every outcome; False if memory ran out."""
    try:
        try:
            fn = _compile(request["code"])
        except MemoryError:
            raise
        except BaseException as exc:
            failure = {"error": {"kind": "user_error", "message": _describe(exc)[:16000]}}
            outcomes = [failure for _ in request["batch"]]
        else:
            outcomes = [_call(fn, inputs) for inputs in request["batch"]]
        payload = json.dumps(outcomes, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except MemoryError:
        return False
    out.frame(TAG_RESULT, payload)
    return True


def _read_request() -> bytes:
    chunks = bytearray()
    while not chunks.endswith(b"\n"):
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


def serve_one(cpu_seconds: int, memory_mb: int, tmpfs_mb: int) -> NoReturn:
    """Handle the request on stdin, then exit. Runs with user privileges only.

    ``memory_mb`` is the address-space limit; ``tmpfs_mb`` the size of the run's
    /tmp and /dev/shm (0: not a tmpfs of the run's own).
    """
    global _tmpfs_in_budget
    _tmpfs_in_budget = tmpfs_mb > 0
    out = _Output()
    signal.signal(signal.SIGXCPU, _on_xcpu)
    # Oversized files then fail with EFBIG (a user error) instead of killing us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    line = _read_request()
    if not line:
        os._exit(0)
    request = json.loads(line)
    del line
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _apply_limits(cpu_seconds, memory_mb)
    os.write(SETUP_FD, SETUP_DONE)
    os.close(SETUP_FD)
    if not (_run_batch(out, request) if "batch" in request else _run(out, request)):
        # Out of memory: the exception (and its frames holding the memory) is gone now.
        gc.collect()
        try:
            out.write(_MEMORY_FRAME)
        except BaseException:
            os._exit(EXIT_MEMORY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(0)
