"""PythonFuncNode user code runs sandboxed: limits and faults fail the node clearly, the worker keeps serving."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import httpx
import pytest

from tests.builders import double_graph
from tests.conftest import Stack

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


def py_task(run: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in run["tasks"] if t["node_id"] == "py1")


@pytest.mark.parametrize(
    ("code", "limits", "fragment"),
    [
        ("while True:\n    pass", {"wall_seconds": 1}, "wall"),
        ("x = bytearray(1024 * 1024 * 1024)\nreturn {'y': len(x)}", {"memory_mb": 128}, "memory"),
        ("import os\nos._exit(3)", {}, "exit"),
        ("return {'y': 'x' * 3_000_000}", {"output_bytes": 1_000_000}, "output"),
        ("return {'y': 'not an int'}", {}, "y"),
    ],
    ids=["infinite-loop", "memory-bomb", "crash", "huge-output", "wrong-type"],
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
