"""PythonFuncNode user code runs sandboxed: limits and faults fail the node clearly, the worker keeps serving."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

import httpx
import pytest

from tests.builders import double_graph
from tests.conftest import Stack, Tenant, wait_until

pytestmark = pytest.mark.e2e


async def run_code(api: httpx.AsyncClient, code: str, **limits: Any) -> dict[str, Any]:
    defn = double_graph(code)
    defn["nodes"][1]["config"].update(limits)
    wf = (await api.post("/wf/", json={"name": f"py-{uuid.uuid4().hex[:6]}", "definition": defn})).json()[
        "id"
    ]
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    assert resp.status_code == 200, resp.text
    run: dict[str, Any] = (await api.get(f"/wf/{wf}/runs/")).json()[0]
    return run


# Writes twice a 64 MB budget into /tmp, a tmpfs that counts towards it.
FILL_TMP = "with open('/tmp/fill', 'wb') as f:\n    for _ in range(128):\n        f.write(b'x' * 2**20)\nreturn {'y': 1}"


def py_task(run: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in run["tasks"] if t["node_id"] == "py1")


@pytest.mark.parametrize(
    ("code", "limits", "fragment"),
    [
        ("while True:\n    pass", {"wall_seconds": 1}, "wall"),
        ("x = bytearray(1024 * 1024 * 1024)\nreturn {'y': len(x)}", {"memory_mb": 128}, "memory"),
        ("import os\nos._exit(3)", {}, "exit"),
        # 154 is also the sandbox's own set-up failure status: user code's is told apart.
        ("import os\nos._exit(154)", {}, "user code exited with status 154"),
        (FILL_TMP, {"memory_mb": 64}, "exceeded its memory limit of 64 mb"),
        ("return {'y': 'x' * 3_000_000}", {"output_bytes": 1_000_000}, "output"),
        ("return {'y': 'not an int'}", {}, "y"),
    ],
    ids=[
        "infinite-loop",
        "memory-bomb",
        "crash",
        "exit-154",
        "tmp-twice-the-budget",
        "huge-output",
        "wrong-type",
    ],
)
async def test_faulty_user_code_fails_its_node_with_a_clear_error(
    api: httpx.AsyncClient, code: str, limits: dict[str, Any], fragment: str
) -> None:
    run = await run_code(api, code, **limits)
    assert run["status"] == "FAILED"
    task = py_task(run)
    assert task["status"] == "FAILED"
    assert fragment in task["error"].lower()
    healthy = await run_code(api, "return {'y': input_model.input_node.x + 1}")
    assert healthy["status"] == "COMPLETED"


async def test_user_code_cannot_see_the_service_environment(api: httpx.AsyncClient) -> None:
    run = await run_code(
        api, "import os\nreturn {'y': 1, 'env': dict(os.environ), 'uid': os.getuid()}", output_schema={}
    )
    out = py_task(run)["outputs"]
    assert "DATABASE_URL" not in out["env"]
    assert not any("TEMPORAL" in k for k in out["env"])


async def test_user_code_cannot_reach_temporal_or_the_data_directory(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    # The test process itself can reach this port, so "blocked" can only come from the sandbox.
    with socket.create_connection(("127.0.0.1", stack.temporal_port), timeout=1):
        pass
    code = (
        "import socket, os\nresult = []\n"
        f"for port in ({stack.temporal_port},):\n"
        "    try:\n        socket.create_connection(('127.0.0.1', port), timeout=1)\n        result.append('open')\n"
        "    except OSError:\n        result.append('blocked')\n"
        f"try:\n    os.listdir({str(stack.tmp / 'data')!r})\n    result.append('readable')\n"
        "except OSError:\n    result.append('hidden')\n"
        "return {'y': 1, 'net': result}"
    )
    (stack.tmp / "data").chmod(0o700)
    run = await run_code(api, code, output_schema={})
    assert py_task(run)["outputs"]["net"] == ["blocked", "hidden"]


def abstract_socket_bound(name: str) -> bool:
    """True once some process on the host, in any network namespace, has bound ``@name``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/net/unix") as fh:
                    if f"@{name}" in fh.read():
                        return True
            except OSError:
                continue
    return False


async def test_concurrent_runs_of_two_tenants_cannot_meet_over_an_abstract_socket(
    api: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    if os.geteuid() != 0:
        pytest.skip("per-run namespaces need root (and finding the socket needs to read every /proc)")
    name = f"e2e-{uuid.uuid4().hex}"
    listener = (
        "import socket\ns = socket.socket(socket.AF_UNIX)\n"
        f"s.bind('\\0{name}')\ns.listen(8)\ns.settimeout(30)\n"
        "try:\n    s.accept()\n    return {'y': 1}\nexcept OSError:\n    return {'y': 0}"
    )
    probe = (
        "import socket\nc = socket.socket(socket.AF_UNIX)\ntry:\n"
        f"    c.connect('\\0{name}')\n    reached = 1\nexcept OSError:\n    reached = 0\n"
        f"listed = '@{name}' in open('/proc/net/unix').read()\n"
        "return {'y': reached + 2 * listed}"
    )
    defn = double_graph(listener)
    wf = (await api.post("/wf/", json={"name": f"listen-{name[-6:]}", "definition": defn})).json()["id"]
    started = await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    assert started.status_code == 200, started.text
    run_id = started.json()["id"]
    try:
        await wait_until(lambda: asyncio.to_thread(abstract_socket_bound, name), within=60)
        theirs = httpx.Headers(other_tenant.headers)
        defn = double_graph(probe)
        created = await api.post(
            "/wf/", json={"name": f"probe-{name[-6:]}", "definition": defn}, headers=theirs
        )
        other_wf = created.json()["id"]
        body = {"initial_inputs": {"input_node": {"x": 1}}}
        resp = await api.post(f"/wf/{other_wf}/run/", json=body, headers=theirs)
        assert resp.status_code == 200, resp.text
        probed = (await api.get(f"/wf/{other_wf}/runs/", headers=theirs)).json()[0]
        assert probed["status"] == "COMPLETED", probed
        assert py_task(probed)["outputs"] == {"y": 0}, "reached (1) or listed (2) the other tenant's socket"
    finally:
        await api.post(f"/wf/cancel_workflow/{run_id}/")
