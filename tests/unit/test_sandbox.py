"""Behaviour of the Python sandbox pool: results, limits, isolation, cancellation."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from activities.sandbox import SandboxError, SandboxLimits, SandboxPool, child_main
from activities.sandbox.child import UID_BASE, UID_COUNT, choose_interpreter, find_tool, nobody_can_execute
from activities.sandbox.pool import validate_output

DOUBLE = 'return {"y": input_model.input_node.x * 2}'
# Generous where timing is not the point: the test machine may be loaded.
RELAXED = SandboxLimits(wall_seconds=60.0, cpu_seconds=60, memory_mb=512)


@pytest.fixture(scope="module")
async def auto_pool() -> AsyncIterator[SandboxPool]:
    pool = SandboxPool(python=None, isolation="auto", limits=RELAXED)
    await pool.start()
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def plain_pool() -> AsyncIterator[SandboxPool]:
    pool = SandboxPool(python=None, isolation="none", limits=RELAXED)
    await pool.start()
    yield pool
    await pool.close()


@pytest.fixture(params=["auto", "none"])
def pool(request: pytest.FixtureRequest, auto_pool: SandboxPool, plain_pool: SandboxPool) -> SandboxPool:
    """Behaviour that must hold whatever the isolation mode."""
    return auto_pool if request.param == "auto" else plain_pool


@pytest.fixture
def ns_pool(auto_pool: SandboxPool) -> SandboxPool:
    if auto_pool.effective_isolation != "namespaces":
        pytest.skip("namespace isolation is not available here (needs root, unshare and setpriv)")
    return auto_pool


async def expect_error(pool: SandboxPool, code: str, kind: str, **kwargs: Any) -> SandboxError:
    with pytest.raises(SandboxError) as caught:
        await pool.run(code, kwargs.pop("inputs", {}), **kwargs)
    assert caught.value.kind == kind, caught.value.message
    return caught.value


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone between open() and read()
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --- results and inputs -------------------------------------------------------


async def test_returns_the_dict_built_by_user_code(pool: SandboxPool) -> None:
    assert await pool.run(DOUBLE, {"input_node": {"x": 21}}) == {"y": 42}


async def test_nested_inputs_support_attribute_and_item_access(pool: SandboxPool) -> None:
    code = (
        "node = input_model.input_node\n"
        'return {"a": node.inner.items_[0].w, "b": input_model["input_node"]["inner"]["items_"][1]["w"],\n'
        '        "has": "x" in node, "keys": sorted(node)}\n'
    )
    inputs = {"input_node": {"x": 1, "inner": {"items_": [{"w": 5}, {"w": 6}]}}}
    assert await pool.run(code, inputs) == {"a": 5, "b": 6, "has": True, "keys": ["inner", "x"]}


async def test_user_code_can_import_stdlib_and_print_without_corrupting_the_result(pool: SandboxPool) -> None:
    code = 'import math, json\nprint("debug output")\nreturn {"r": math.sqrt(16), "j": json.dumps([1])}'
    assert await pool.run(code, {}) == {"r": 4.0, "j": "[1]"}


async def test_missing_input_attribute_is_a_user_error(pool: SandboxPool) -> None:
    error = await expect_error(pool, "return {'v': input_model.nope}", "user_error")
    assert "AttributeError" in error.message


# --- user errors and bad output ----------------------------------------------------


async def test_user_exception_is_user_error_with_type_message_and_traceback(pool: SandboxPool) -> None:
    code = 'def helper():\n    raise ValueError("boom from user")\nhelper()\nreturn {}'
    error = await expect_error(pool, code, "user_error")
    assert "ValueError: boom from user" in error.message
    assert 'File "<user_code>", line 2, in helper' in error.message
    assert 'raise ValueError("boom from user")' in error.message


async def test_syntax_error_is_user_error(pool: SandboxPool) -> None:
    error = await expect_error(pool, "retrun {}", "user_error")
    assert "SyntaxError" in error.message


async def test_sys_exit_in_user_code_is_user_error(pool: SandboxPool) -> None:
    error = await expect_error(pool, "import sys\nsys.exit(4)", "user_error")
    assert "SystemExit" in error.message


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("return [1, 2]", "must return a dict, got list"),
        ("return None", "must return a dict, got NoneType"),
        ("return {'s': {1, 2}}", "not JSON-serialisable"),
        ("return {'n': float('nan')}", "not JSON-serialisable"),
    ],
)
async def test_non_dict_or_non_json_result_is_bad_output(pool: SandboxPool, code: str, fragment: str) -> None:
    error = await expect_error(pool, code, "bad_output")
    assert fragment in error.message


async def test_output_schema_mismatch_is_bad_output(pool: SandboxPool) -> None:
    error = await expect_error(pool, "return {'y': 'seven'}", "bad_output", output_schema={"y": "integer"})
    assert error.message == "Output validation error: field 'y' expected integer, got str"


async def test_output_schema_match_returns_result(pool: SandboxPool) -> None:
    schema = {"y": "integer", "f": "float", "s": "string", "anything": "custom"}
    result = await pool.run("return {'y': 1, 'f': 2, 's': 'x', 'anything': None}", {}, output_schema=schema)
    assert result["y"] == 1


def test_validate_output_type_rules() -> None:
    validate_output(
        {"n": 3, "b": True, "l": [], "d": {}}, {"n": "number", "b": "bool", "l": "array", "d": "object"}
    )
    with pytest.raises(SandboxError, match="missing field 'y'"):
        validate_output({}, {"y": "str"})
    with pytest.raises(SandboxError, match="field 'i' expected integer, got bool"):
        validate_output({"i": True}, {"i": "int"})
    with pytest.raises(SandboxError, match="field 's' expected string, got null"):
        validate_output({"s": None}, {"s": "string"})


# --- limits ------------------------------------------------------------------------


def test_lowered_by_takes_the_minimum_of_each_field() -> None:
    base = SandboxLimits(wall_seconds=10, cpu_seconds=10, memory_mb=256, output_bytes=1000)
    assert base.lowered_by(None) is base
    assert base.lowered_by({"wall_seconds": 99, "memory_mb": 64}) == SandboxLimits(10, 10, 64, 1000)
    assert base.lowered_by(SandboxLimits(5, 60, 512, 10)) == SandboxLimits(5, 10, 256, 10)
    with pytest.raises(ValueError, match="unknown"):
        base.lowered_by({"network": True})


async def test_per_run_limits_cannot_raise_the_pool_limits() -> None:
    pool = SandboxPool(python=None, isolation="auto", limits=SandboxLimits(wall_seconds=1.0))
    await pool.start()
    try:
        error = await expect_error(
            pool, "import time\ntime.sleep(30)", "timeout", limits=SandboxLimits(wall_seconds=30.0)
        )
        assert error.message == "Python node exceeded its wall-time limit of 1.0 s"
    finally:
        await pool.close()


async def test_infinite_loop_hits_wall_timeout_and_pool_keeps_serving(pool: SandboxPool) -> None:
    started = time.monotonic()
    await expect_error(pool, "while True: pass", "timeout", limits=SandboxLimits(wall_seconds=1.0))
    assert time.monotonic() - started < 20
    assert await pool.run(DOUBLE, {"input_node": {"x": 1}}) == {"y": 2}


async def test_python_level_cpu_burn_is_cpu_limit(pool: SandboxPool) -> None:
    # The soft RLIMIT_CPU raises SIGXCPU, whose handler exits with a dedicated code.
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=30.0)
    error = await expect_error(pool, "while True: pass", "cpu_limit", limits=limits)
    assert error.message == "Python node exceeded its CPU-time limit of 1 s"


async def test_cpu_burn_inside_one_c_call_is_cpu_limit(pool: SandboxPool) -> None:
    # The SIGXCPU handler cannot run during one long C call; the hard limit's SIGKILL ends it.
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=30.0)
    await expect_error(pool, "sum(range(10**13))", "cpu_limit", limits=limits)


@pytest.mark.parametrize(
    "code",
    ["x = bytearray(2_000_000_000)", "x = []\nwhile True:\n    x.append(bytearray(1_000_000))"],
    ids=["one-huge-allocation", "growing-list"],
)
async def test_memory_bomb_is_memory_limit(pool: SandboxPool, code: str) -> None:
    limits = SandboxLimits(memory_mb=128)
    error = await expect_error(pool, code, "memory_limit", limits=limits)
    assert error.message == "Python node exceeded its memory limit of 128 MB"


async def test_output_over_the_byte_limit_is_output_too_large(pool: SandboxPool) -> None:
    limits = SandboxLimits(output_bytes=1000)
    # json.dumps({"s": "x" * n}) is n + 9 bytes.
    assert await pool.run("return {'s': 'x' * 991}", {}, limits=limits) == {"s": "x" * 991}
    error = await expect_error(pool, "return {'s': 'x' * 992}", "output_too_large", limits=limits)
    assert "1001 bytes" in error.message


@pytest.mark.parametrize("status", [3, child_main.EXIT_CPU, child_main.EXIT_SETUP])
async def test_os_exit_is_reported_as_user_codes_exit_status(pool: SandboxPool, status: int) -> None:
    # Also the statuses the sandbox runtime uses for itself: user code may exit with any.
    error = await expect_error(pool, f"import os\nos._exit({status})", "crashed")
    assert error.message == (
        f"Python node crashed: user code exited with status {status} without returning a result"
    )


async def test_exit_is_reported_promptly_even_if_a_detached_grandchild_holds_the_pipes(
    pool: SandboxPool,
) -> None:
    code = "import os, subprocess\nsubprocess.Popen(['/bin/sleep', '5'], start_new_session=True)\nos._exit(3)"
    started = time.monotonic()
    await expect_error(pool, code, "crashed", limits=SandboxLimits(wall_seconds=30.0))
    assert time.monotonic() - started < 4


async def test_segfault_is_crashed_with_signal(pool: SandboxPool) -> None:
    error = await expect_error(pool, "import ctypes\nctypes.string_at(0)", "crashed")
    assert "SIGSEGV" in error.message


async def test_a_failed_sandbox_set_up_is_unavailable_not_user_codes_exit(
    ns_pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child exits with the set-up status before user code could run: a tmpfs of size 0
    # (unbounded, for the kernel) is refused.
    monkeypatch.setattr(SandboxLimits, "memory_split", lambda self, private_tmpfs: (self.memory_mb, 0))
    error = await expect_error(ns_pool, "return {}", "unavailable")
    assert error.message.startswith("sandbox process failed to start")
    assert "tmpfs reads 0 as unbounded" in error.message


# --- isolation ----------------------------------------------------------------------


async def test_child_environment_carries_no_parent_secrets(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "marker-7f3e9a")
    env = (await pool.run("import os\nreturn {'env': dict(os.environ)}", {}))["env"]
    assert "SANDBOX_TEST_SECRET" not in env
    assert not any("marker-7f3e9a" in value for value in env.values())
    assert "PATH" not in env and "HOME" not in env


async def test_child_starts_in_a_fresh_empty_writable_directory(pool: SandboxPool) -> None:
    code = "import os\nbefore = os.listdir('.')\nopen('f.txt', 'w').write('x')\nreturn {'before': before, 'cwd': os.getcwd()}"
    first = await pool.run(code, {})
    second = await pool.run(code, {})
    assert first["before"] == [] and second["before"] == []
    assert first["cwd"] != second["cwd"]


async def test_child_inherits_no_descriptors_but_its_pipes(pool: SandboxPool) -> None:
    # 0-2 are its stdin/stdout/stderr, 4 the private frame channel; 3, the set-up pipe, is
    # closed before user code runs (the listing itself may get it).
    code = (
        "import os\nfds = {}\nfor fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n        fds[fd] = os.readlink('/proc/self/fd/' + fd)\n    except OSError:\n        pass\n"
        "return {'fds': fds}"
    )
    fds = (await pool.run(code, {}))["fds"]
    assert {"0", "1", "2", "4"} <= set(fds) <= {"0", "1", "2", "3", "4"}
    assert not any(target.startswith(("socket:", "anon_inode:")) for target in fds.values()), fds


async def test_namespaced_child_runs_unprivileged_as_a_sandbox_uid(ns_pool: SandboxPool) -> None:
    code = (
        "import os\nstatus = open('/proc/self/status').read().splitlines()\n"
        "return {'ids': [os.getuid(), os.geteuid(), os.getgid(), os.getegid()], 'groups': os.getgroups(),\n"
        "        'status': dict(l.split(':\\t') for l in status if l.startswith(('Cap', 'NoNewPrivs')))}"
    )
    result = await ns_pool.run(code, {})
    uid = result["ids"][0]
    assert UID_BASE <= uid < UID_BASE + UID_COUNT
    assert result["ids"] == [uid] * 4 and result["groups"] == []
    assert result["status"] == {
        "CapInh": "0" * 16,
        "CapPrm": "0" * 16,
        "CapEff": "0" * 16,
        "CapBnd": "0" * 16,
        "CapAmb": "0" * 16,
        "NoNewPrivs": "1",
    }


async def test_namespaced_child_sees_no_other_processes(ns_pool: SandboxPool) -> None:
    code = "import os\nreturn {'pids': sorted(p for p in os.listdir('/proc') if p.isdigit())}"
    assert await ns_pool.run(code, {}) == {"pids": ["1"]}


@pytest.fixture
def root_only_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("database password")
    tmp_path.chmod(0o700)
    return secret


async def test_namespaced_child_cannot_read_root_only_directories(
    ns_pool: SandboxPool, root_only_secret: Path
) -> None:
    # Under /tmp, which the child does not even see (it has a private tmpfs there).
    code = f"return {{'s': open({str(root_only_secret)!r}).read()}}"
    error = await expect_error(ns_pool, code, "user_error")
    assert "FileNotFoundError" in error.message or "PermissionError" in error.message
    root = os.stat("/root")
    if root.st_uid != 0 or root.st_mode & 0o077:
        pytest.skip("/root is not a root-only directory here")
    error = await expect_error(ns_pool, "import os\nreturn {'l': os.listdir('/root')}", "user_error")
    assert "PermissionError" in error.message


@pytest.fixture
def open_socket_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="sandbox-test-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()


async def test_namespaced_child_has_private_tmp_and_no_host_unix_sockets(
    ns_pool: SandboxPool, plain_pool: SandboxPool, open_socket_dir: Path
) -> None:
    # A world-accessible socket, as local services leave in /tmp or /run: net namespaces do
    # not cover unix sockets bound to paths, so the sandbox must not see these paths at all.
    path = open_socket_dir / "service.sock"
    server = await asyncio.start_unix_server(lambda r, w: w.close(), path=str(path))
    os.chmod(path, 0o777)
    code = f"import socket\nsocket.socket(socket.AF_UNIX).connect({str(path)!r})\nreturn {{}}"
    listing = "import os\nreturn {'tmp': os.listdir('/tmp'), 'cwd': os.getcwd(), 'run': os.listdir('/run')}"
    try:
        assert await plain_pool.run(code, {}) == {}  # control: reachable without isolation
        error = await expect_error(ns_pool, code, "user_error")
        assert "FileNotFoundError" in error.message
        seen = await ns_pool.run(listing, {})
        assert sorted(seen["tmp"]) == [".shm", os.path.basename(seen["cwd"])]  # .shm is /dev/shm
        assert seen["run"] == []
    finally:
        server.close()
        await server.wait_closed()


async def test_namespaced_child_has_no_network_even_to_loopback(
    ns_pool: SandboxPool, plain_pool: SandboxPool
) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5).close()\nreturn {{'ok': True}}"
    try:
        # Control: the port really is reachable from an unisolated child.
        assert await plain_pool.run(code, {}) == {"ok": True}
        error = await expect_error(ns_pool, code, "user_error")
        assert "Network is unreachable" in error.message
    finally:
        server.close()
        await server.wait_closed()


def test_chosen_interpreter_is_executable_by_nobody() -> None:
    assert nobody_can_execute(choose_interpreter(None))
    if os.path.realpath(sys.executable).startswith("/root/"):
        assert not nobody_can_execute(sys.executable)


async def test_auto_isolation_uses_namespaces_when_root_with_unshare(auto_pool: SandboxPool) -> None:
    if os.geteuid() != 0 or find_tool("unshare") is None or find_tool("setpriv") is None:
        pytest.skip("not root, or no unshare/setpriv")
    assert auto_pool.effective_isolation == "namespaces"


# --- pool behaviour ---------------------------------------------------------------------


async def test_cancelling_run_kills_the_child(pool: SandboxPool) -> None:
    task = asyncio.create_task(pool.run("import time\ntime.sleep(60)\nreturn {}", {}))
    deadline = time.monotonic() + 30
    while not pool.running_pids:
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.01)
    pids = pool.running_pids
    await asyncio.sleep(0.2)  # let the child get into user code
    assert all(pid_alive(pid) for pid in pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"child {pids} still alive after cancellation"
        await asyncio.sleep(0.01)


async def test_twenty_concurrent_runs_all_succeed(pool: SandboxPool) -> None:
    results = await asyncio.gather(*(pool.run(DOUBLE, {"input_node": {"x": i}}) for i in range(20)))
    assert results == [{"y": 2 * i} for i in range(20)]


async def test_missing_interpreter_is_unavailable() -> None:
    pool = SandboxPool(python="/nonexistent/python3", isolation="none", limits=RELAXED)
    with pytest.raises(SandboxError) as caught:
        await pool.start()
    assert caught.value.kind == "unavailable"
    await pool.close()


async def test_run_after_close_is_unavailable_and_close_is_idempotent() -> None:
    pool = SandboxPool(python=None, isolation="none", limits=RELAXED)
    await pool.start()
    await pool.close()
    await pool.close()
    await expect_error(pool, DOUBLE, "unavailable", inputs={"input_node": {"x": 1}})


def test_sandbox_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(SandboxError("timeout", "too slow", stderr="tail")))
    assert (error.kind, error.message, error.stderr, str(error)) == (
        "timeout",
        "too slow",
        "tail",
        "too slow",
    )


# --- the zygote: per-run uids, separation of concurrent runs, restarts ---------------------------


SLEEPER = "import os, time\nstarted = time.monotonic()\ntime.sleep({seconds})\nreturn {{'uid': os.getuid(), 'span': [started, time.monotonic()]}}"


async def wait_for_running(pool: SandboxPool, count: int = 1) -> frozenset[int]:
    deadline = time.monotonic() + 30
    while len(pool.running_pids) < count:
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.01)
    return pool.running_pids


async def test_concurrent_namespaced_runs_have_different_uids(ns_pool: SandboxPool) -> None:
    first, second = await asyncio.gather(
        ns_pool.run(SLEEPER.format(seconds=0.5), {}), ns_pool.run(SLEEPER.format(seconds=0.5), {})
    )
    assert first["span"][0] < second["span"][1] and second["span"][0] < first["span"][1], "did not overlap"
    assert first["uid"] != second["uid"]
    assert all(UID_BASE <= run["uid"] < UID_BASE + UID_COUNT for run in (first, second))


async def test_a_namespaced_child_cannot_see_or_signal_another(ns_pool: SandboxPool) -> None:
    victim = asyncio.create_task(ns_pool.run(SLEEPER.format(seconds=2), {}))
    (victim_pid,) = await wait_for_running(ns_pool)
    code = (
        "import os, signal\nhits = []\n"
        f"for pid in [-1, {victim_pid}, *range(2, 2000)]:\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n        hits.append(pid)\n"
        "    except OSError:\n        pass\n"
        f"return {{'hits': hits, 'sees': os.path.exists('/proc/{victim_pid}'), 'procs': [p for p in os.listdir('/proc') if p.isdigit()]}}"
    )
    assert await ns_pool.run(code, {}) == {"hits": [], "sees": False, "procs": ["1"]}
    assert (await victim)["uid"] >= UID_BASE  # it ran to completion


async def test_processes_started_by_user_code_die_with_the_run(ns_pool: SandboxPool) -> None:
    marker = f"{time.time_ns() % 10**6}.25"  # a sleep duration nothing else uses
    code = f"import subprocess\nsubprocess.Popen(['/bin/sleep', '{marker}'], start_new_session=True)\nreturn {{}}"
    assert await ns_pool.run(code, {}) == {}

    def survivors() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 5
    while survivors():
        assert time.monotonic() < deadline, "a process started by user code outlived the run"
        await asyncio.sleep(0.05)


@pytest.fixture(params=["auto", "none"])
async def own_pool(request: pytest.FixtureRequest) -> AsyncIterator[SandboxPool]:
    """A pool of its own, for tests that kill its zygote."""
    pool = SandboxPool(python=None, isolation=request.param, limits=RELAXED)
    await pool.start()
    yield pool
    await pool.close()


def zygote_pid(pool: SandboxPool) -> int:
    zygote = pool._zygote
    assert zygote is not None and zygote.pid is not None
    return zygote.pid


async def test_zygote_is_restarted_after_being_killed(own_pool: SandboxPool) -> None:
    old = zygote_pid(own_pool)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while own_pool._zygote is None or not own_pool._zygote.alive or zygote_pid(own_pool) == old:
        assert time.monotonic() < deadline, "the zygote was not restarted"
        await asyncio.sleep(0.02)
    assert await own_pool.run(DOUBLE, {"input_node": {"x": 4}}) == {"y": 8}
    assert not pid_alive(old)


async def test_run_whose_zygote_dies_is_unavailable_and_the_next_run_works(own_pool: SandboxPool) -> None:
    task = asyncio.create_task(own_pool.run("import time\ntime.sleep(60)\nreturn {}", {}))
    pids = await wait_for_running(own_pool)
    os.kill(zygote_pid(own_pool), signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(SandboxError) as caught:
        await task
    assert caught.value.kind == "unavailable"
    assert "zygote died" in caught.value.message
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "the child outlived its zygote"
        await asyncio.sleep(0.01)
    assert await own_pool.run(DOUBLE, {"input_node": {"x": 5}}) == {"y": 10}


async def test_close_kills_the_zygote_and_running_children(own_pool: SandboxPool) -> None:
    task = asyncio.create_task(own_pool.run("import time\ntime.sleep(60)\nreturn {}", {}))
    pids = await wait_for_running(own_pool) | {zygote_pid(own_pool)}
    await own_pool.close()
    with pytest.raises(SandboxError) as caught:
        await task
    assert caught.value.kind == "unavailable"
    assert not any(pid_alive(pid) for pid in pids)


# --- several calls in one child (batch rows) -----------------------------------


async def test_run_many_returns_one_outcome_per_inputs_in_order(pool: SandboxPool) -> None:
    code = (
        "x = input_model.input_node.x\n"
        "if x == 2:\n    raise ValueError('two')\n"
        "if x == 3:\n    return {'y': 'text'}\n"
        "if x == 4:\n    return {'y': 'z' * 5000}\n"
        "return {'y': x * 2}"
    )
    inputs = [{"input_node": {"x": i}} for i in range(5)]
    small = SandboxLimits(wall_seconds=30.0, cpu_seconds=30, memory_mb=512, output_bytes=1000)
    outcomes = await pool.run_many(code, inputs, output_schema={"y": "integer"}, limits=small)
    assert outcomes[0] == {"y": 0} and outcomes[1] == {"y": 2}
    errors = outcomes[2:]
    assert all(isinstance(e, SandboxError) for e in errors)
    kinds = [e.kind for e in errors if isinstance(e, SandboxError)]
    assert kinds == ["user_error", "bad_output", "output_too_large"]
    assert "ValueError: two" in str(errors[0])


async def test_run_many_compile_error_fails_every_call(pool: SandboxPool) -> None:
    outcomes = await pool.run_many("return {", [{}, {}])
    assert [o.kind for o in outcomes if isinstance(o, SandboxError)] == ["user_error", "user_error"]


async def test_run_many_over_its_wall_time_fails_as_a_whole(pool: SandboxPool) -> None:
    code = "import time\ntime.sleep(0.4)\nreturn {}"
    with pytest.raises(SandboxError) as caught:
        await pool.run_many(code, [{}, {}, {}], limits=SandboxLimits(wall_seconds=0.6))
    assert caught.value.kind == "timeout"


# --- per-run network and ipc namespaces, one memory budget, seccomp ---------------------------


LISTENER = (
    "import socket, time\ns = socket.socket(socket.AF_UNIX)\ns.bind('\\0{name}')\ns.listen(8)\n"
    "time.sleep(30)\nreturn {{}}"
)
PROBE = (
    "import socket\nc = socket.socket(socket.AF_UNIX)\ntry:\n    c.connect('\\0{name}')\n    reached = True\n"
    "except OSError:\n    reached = False\n"
    "return {{'reached': reached, 'listed': '@{name}' in open('/proc/net/unix').read()}}"
)


def unix_sockets_seen_by(pid: int) -> str:
    """/proc/net/unix in ``pid``'s network namespace (we are root: we may read it)."""
    return Path(f"/proc/{pid}/net/unix").read_text()


async def probe_while_listening(pool: SandboxPool) -> dict[str, Any]:
    """One run listens on an abstract unix socket; a concurrent run tries to reach and list it."""
    name = f"sandbox-test-{os.getpid()}-{time.time_ns()}"
    listener = asyncio.create_task(pool.run(LISTENER.format(name=name), {}))
    try:
        (pid,) = await wait_for_running(pool)
        deadline = time.monotonic() + 30
        while f"@{name}" not in unix_sockets_seen_by(pid):
            assert time.monotonic() < deadline, "the listener never bound its socket"
            await asyncio.sleep(0.02)
        return await pool.run(PROBE.format(name=name), {})
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener


async def test_concurrent_runs_cannot_reach_or_list_each_others_abstract_sockets(
    ns_pool: SandboxPool, own_plain_pool: SandboxPool
) -> None:
    # Control: without isolation the two runs share the host's network namespace.
    assert await probe_while_listening(own_plain_pool) == {"reached": True, "listed": True}
    assert await probe_while_listening(ns_pool) == {"reached": False, "listed": False}


@pytest.fixture
async def own_plain_pool() -> AsyncIterator[SandboxPool]:
    """Isolation none, and no other test's children running in it (running_pids is exact)."""
    pool = SandboxPool(python=None, isolation="none", limits=RELAXED)
    await pool.start()
    yield pool
    await pool.close()


async def test_each_run_has_network_and_ipc_namespaces_of_its_own(ns_pool: SandboxPool) -> None:
    code = "import os\nreturn {n: os.readlink('/proc/self/ns/' + n) for n in ('net', 'ipc')}"
    first, second = await asyncio.gather(ns_pool.run(code, {}), ns_pool.run(code, {}))
    host = {n: os.readlink(f"/proc/self/ns/{n}") for n in ("net", "ipc")}
    for name in ("net", "ipc"):
        assert len({first[name], second[name], host[name]}) == 3, name


async def test_tmpfs_and_address_space_together_stay_within_the_memory_budget(ns_pool: SandboxPool) -> None:
    code = (
        "import os, resource\nfs = os.statvfs('/tmp')\n"
        "return {'as': resource.getrlimit(resource.RLIMIT_AS)[0], 'tmp': fs.f_blocks * fs.f_frsize,\n"
        "        'shared': os.stat('/tmp').st_dev == os.stat('/dev/shm').st_dev}"
    )
    result = await ns_pool.run(code, {}, limits=SandboxLimits(memory_mb=128))
    assert result["shared"], "/tmp and /dev/shm must be one tmpfs, so one size bounds both"
    assert result["tmp"] > 0 and result["as"] > 0
    assert result["as"] + result["tmp"] <= 128 * 1024 * 1024


@pytest.mark.parametrize("target", ["/tmp/big", "/dev/shm/big"])
async def test_writing_twice_the_memory_budget_into_tmpfs_is_memory_limit(
    ns_pool: SandboxPool, target: str
) -> None:
    code = f"with open({target!r}, 'wb') as f:\n    for _ in range(128):\n        f.write(b'x' * 2**20)\nreturn {{}}"
    error = await expect_error(ns_pool, code, "memory_limit", limits=SandboxLimits(memory_mb=64))
    assert error.message.startswith("Python node exceeded its memory limit of 64 MB")
    assert "/tmp and /dev/shm" in error.message


SECCOMP_PROBE = """
import ctypes, errno, os, threading
libc = ctypes.CDLL(None, use_errno=True)

def errno_of(*call):
    ctypes.set_errno(0)
    result = libc.syscall(*call)
    if result == 0 and call[0] == 56:
        os._exit(0)  # a clone that got through: the copy must not go on
    return 'allowed' if result >= 0 else errno.errorcode[ctypes.get_errno()]

thread = threading.Thread(target=lambda: None)
thread.start()
thread.join()
status = dict(l.split(':\t') for l in open('/proc/self/status').read().splitlines() if ':\t' in l)
return {
    'seccomp': status['Seccomp'],
    'unshare_user': errno_of(272, 0x10000000),
    'clone_newuser': errno_of(56, 0x10000000 | 17, 0, 0, 0, 0),
    'mount': errno_of(165, b'none', b'/tmp', b'tmpfs', 0, None),
    'ptrace_traceme': errno_of(101, 0, 0, 0, 0),
    'keyctl': errno_of(250, 0, 0, 0, 0, 0),
    'bpf': errno_of(321, 0, 0, 0),
    'getpid': errno_of(39),
}
"""


async def test_seccomp_denies_namespaces_mounts_ptrace_keyring_and_bpf(ns_pool: SandboxPool) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the probe uses x86_64 syscall numbers")
    assert ns_pool.seccomp_active
    result = await ns_pool.run(SECCOMP_PROBE, {})
    assert result == {
        "seccomp": "2",  # filter mode
        "unshare_user": "EPERM",  # allowed to any user without the filter
        "clone_newuser": "EPERM",
        "mount": "EPERM",
        "ptrace_traceme": "EPERM",  # allowed to any process without the filter
        "keyctl": "EPERM",
        "bpf": "EPERM",
        "getpid": "allowed",  # and threads started: clone3 falls back to clone
    }


async def test_a_batch_row_that_fills_the_tmpfs_is_memory_limit_and_the_others_complete(
    ns_pool: SandboxPool,
) -> None:
    code = (
        "x = input_model.input_node.x\nif x == 1:\n    with open('/tmp/fill', 'wb') as f:\n"
        "        for _ in range(128):\n            f.write(b'x' * 2**20)\nreturn {'y': x}"
    )
    inputs = [{"input_node": {"x": i}} for i in range(3)]
    outcomes = await ns_pool.run_many(code, inputs, limits=SandboxLimits(memory_mb=64))
    assert outcomes[0] == {"y": 0} and outcomes[2] == {"y": 2}
    assert isinstance(outcomes[1], SandboxError) and outcomes[1].kind == "memory_limit"
    assert outcomes[1].message.startswith("Python node exceeded its memory limit of 64 MB")
