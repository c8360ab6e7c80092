"""Hostile and careless input (issue 14): what cannot be stored is refused at the edge with a 4xx naming
the field, or fails the node, row or upload that produced it; limits answer 413/422, never 5xx; nothing
is stored for a refused request, and the API keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node
from tests.conftest import Tenant, reaches, wait_until

pytestmark = pytest.mark.e2e

NUL = "a\x00b"
SURROGATE = "a\ud800b"


def raw(value: Any) -> bytes:
    """JSON as a careless client writes it: NaN allowed, U+0000 and surrogates escaped as such."""
    return json.dumps(value).encode()


async def post_raw(api: httpx.AsyncClient, path: str, body: bytes) -> httpx.Response:
    return await api.post(path, content=body, headers={"content-type": "application/json"})


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


async def new_workflow(api: httpx.AsyncClient, defn: dict[str, Any] | None = None) -> str:
    resp = await api.post(
        "/wf/", json={"name": f"h-{uuid.uuid4().hex[:8]}", "definition": defn or double_graph()}
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


async def root_folder(api: httpx.AsyncClient) -> str:
    return str((await api.get("/v1/folders")).json()["items"][0]["path_part_id"])


# -- 1. what cannot be stored is refused at the edge, naming the field --------------------------------


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [(NUL, "U+0000"), (SURROGATE, "surrogate")],
    ids=["nul", "lone-surrogate"],
)
async def test_unstorable_strings_in_any_json_field_are_refused_with_422_naming_the_field(
    api: httpx.AsyncClient, bad: str, fragment: str
) -> None:
    wf = await new_workflow(api)
    root = await root_folder(api)
    cases = [
        ("/wf/", {"name": bad, "definition": double_graph()}, "name"),
        ("/wf/", {"name": "ok", "description": bad, "definition": double_graph()}, "description"),
        (f"/wf/{wf}/run/", {"initial_inputs": {"input_node": {"x": 1, "s": bad}}}, "initial_inputs"),
        (f"/wf/{wf}/start_run/", {"initial_inputs": {"input_node": {bad: 1}}}, "initial_inputs"),
        ("/v1/folders", {"name": bad, "parent_path_part_id": root}, "name"),
        ("/v1/workflow-definitions", {"name": bad, "parent_path_part_id": root}, "name"),
        ("/v1/api-keys", {"name": bad}, "name"),
        (
            f"/wf/process_pause_action/{uuid.uuid4()}/",
            {"action": "OVERRIDE", "user_id": "u", "inputs": {"v": bad}},
            "inputs",
        ),
        (f"/v1/workflow-runs/{uuid.uuid4()}/start", {"user_message": bad}, "user_message"),
    ]
    before = len((await api.get("/run/", params={"page_size": 100})).json())
    for path, body, field in cases:
        resp = await post_raw(api, path, raw(body))
        assert resp.status_code == 422, (path, resp.text)
        [item] = resp.json()["detail"]
        assert field in item["loc"] and fragment in item["msg"], (path, item)
    assert len((await api.get("/run/", params={"page_size": 100})).json()) == before


@pytest.mark.parametrize(
    "body",
    [b"NaN", b"Infinity", b'{"name": "n", "definition": {"nodes": [], "links": []}, "x": -Infinity}'],
    ids=["nan", "infinity", "nested-infinity"],
)
async def test_non_finite_numbers_are_refused_with_422(api: httpx.AsyncClient, body: bytes) -> None:
    resp = await post_raw(api, "/wf/", body)
    assert resp.status_code == 422, resp.text
    assert "finite" in resp.json()["detail"][0]["msg"]


async def test_deeply_nested_inputs_are_refused_and_leave_no_run_so_lists_keep_working(
    api: httpx.AsyncClient,
) -> None:
    wf = await new_workflow(api)
    for depth in (500, 900, 50_000):
        deep = b"[" * depth + b"]" * depth
        body = b'{"initial_inputs": {"input_node": {"x": 1, "deep": ' + deep + b"}}}"
        resp = await post_raw(api, f"/wf/{wf}/start_run/", body)
        assert resp.status_code == 422, resp.text
        assert "nests deeper" in resp.json()["detail"][0]["msg"]
    assert (await api.get(f"/wf/{wf}/runs/")).json() == []
    assert (await api.get("/run/")).status_code == 200
    # Node config too.
    defn = double_graph()
    defn["nodes"][1]["config"]["extra"] = nested(600)
    resp = await post_raw(api, "/wf/", raw({"name": "deep", "definition": defn}))
    assert resp.status_code == 422 and "config" in resp.json()["detail"][0]["loc"]


async def test_unstorable_form_fields_and_upload_names_are_refused_with_422(api: httpx.AsyncClient) -> None:
    ds = await api.post(
        "/ds/", files={"file": ("d.csv", b"x\n1\n", "text/csv")}, data={"name": "d", "description": NUL}
    )
    assert ds.status_code == 422, ds.text
    ds = await api.post("/ds/", files={"file": ("d.csv", b"x\n1\n", "text/csv")}, data={"name": NUL})
    assert ds.status_code == 422, ds.text
    root = await root_folder(api)
    did = (
        await api.post(
            "/v1/workflow-definitions",
            json={
                "name": f"f-{uuid.uuid4().hex[:8]}",
                "parent_path_part_id": root,
                "approval_required": False,
            },
        )
    ).json()["id"]
    made = await api.post(f"/v1/workflow-definitions/{did}/runs", data={"user_message": NUL})
    assert made.status_code == 422, made.text
    assert "user_message" in made.json()["detail"][0]["loc"]
    up = await api.post(
        "/v1/documents/ingest",
        files={"file": ("a.txt", b"hi", "text/plain")},
        data={"path_part_id": root, "name": NUL},
    )
    assert up.status_code == 422, up.text


async def test_a_nul_in_the_path_or_query_is_refused_with_422(api: httpx.AsyncClient) -> None:
    assert (await api.get("/wf/a%00b/")).status_code == 422
    assert (await api.get("/run/", params={"page": "1\x00"})).status_code == 422


# -- 1/2. user code output that cannot be stored fails the node, at once ------------------------------


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("return {'y': 'a\\x00b'}", "U+0000"),
        ("return {'y': 'a\\ud800b'}", "surrogate"),
        ("return {'y': float('nan')}", "JSON"),
        ("d = 1\nfor _ in range(200):\n    d = [d]\nreturn {'y': d}", "nests deeper"),
    ],
    ids=["nul", "lone-surrogate", "nan", "deep"],
)
async def test_python_output_that_cannot_be_stored_fails_its_node_without_retrying(
    api: httpx.AsyncClient, code: str, fragment: str
) -> None:
    defn = definition(
        [input_node(), python_node("py1", code), output_node({"y": "py1.y"})],
        [link("input_node", "py1"), link("py1", "output_node")],
    )
    wf = await new_workflow(api, defn)
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    assert resp.status_code == 200, resp.text
    [run] = (await api.get(f"/wf/{wf}/runs/")).json()
    assert run["status"] == "FAILED"
    task = next(t for t in run["tasks"] if t["node_id"] == "py1")
    assert task["status"] == "FAILED" and fragment in task["error"], task
    assert (await api.get("/run/")).status_code == 200


async def test_an_error_message_holding_nul_is_stored_escaped(api: httpx.AsyncClient) -> None:
    defn = definition(
        [input_node(), python_node("py1", "raise ValueError('bad\\x00news')"), output_node({"y": "py1.y"})],
        [link("input_node", "py1"), link("py1", "output_node")],
    )
    wf = await new_workflow(api, defn)
    await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    [run] = (await api.get(f"/wf/{wf}/runs/")).json()
    assert run["status"] == "FAILED"
    assert "bad\\x00news" in next(t for t in run["tasks"] if t["node_id"] == "py1")["error"]


async def test_a_batch_row_whose_output_cannot_be_stored_fails_that_row_only(api: httpx.AsyncClient) -> None:
    code = "x = input_model.input_node.x\nreturn {'y': 'a\\x00b' if x == 2 else str(x)}"
    defn = definition(
        [input_node(), python_node("py1", code, {"y": "string"}), output_node({"y": "py1.y"})],
        [link("input_node", "py1"), link("py1", "output_node")],
    )
    wf = await new_workflow(api, defn)
    ds = await api.post(
        "/ds/",
        params={"name": f"d-{uuid.uuid4().hex[:6]}"},
        files={"file": ("d.csv", b"x\n1\n2\n3\n", "text/csv")},
    )
    assert ds.status_code == 200, ds.text
    started = await api.post(
        f"/wf/{wf}/start_batch_run/", json={"dataset_id": ds.json()["id"], "mini_batch_size": 3}
    )
    assert started.status_code == 200, started.text
    done = await reaches(api, started.json()["id"], "FAILED", within=60)
    assert (done["rows_done"], done["rows_failed"]) == (3, 1), done
    children = (await api.get(f"/run/{done['id']}/children/", params={"page_size": 100})).json()
    failed = [c for c in children if c["status"] == "FAILED"]
    assert len(failed) == 1 and len(children) == 3
    [task] = [t for t in failed[0]["tasks"] if t["node_id"] == "py1"]
    assert "U+0000" in task["error"]


async def test_an_uploaded_text_holding_nul_fails_its_document_and_settles_the_draft(
    api: httpx.AsyncClient,
) -> None:
    root = await root_folder(api)
    did = (
        await api.post(
            "/v1/workflow-definitions",
            json={
                "name": f"f-{uuid.uuid4().hex[:8]}",
                "parent_path_part_id": root,
                "approval_required": False,
            },
        )
    ).json()["id"]
    run = (await api.post(f"/v1/workflow-definitions/{did}/runs")).json()
    up = await api.post(
        "/v1/documents/ingest",
        files={"file": ("a.txt", b"bad\x00text", "text/plain")},
        data={"path_part_id": run["inputs"]["path_part_id"]},
    )
    assert up.status_code == 201, up.text
    doc_id = up.json()["document_id"]

    async def settled() -> dict[str, Any] | None:
        doc: dict[str, Any] = (await api.get(f"/v1/documents/{doc_id}")).json()
        return doc if doc["ingest_status"] != "PENDING" else None

    doc = await wait_until(settled, within=30)
    assert doc["ingest_status"] == "FAILED"

    async def draft_settled() -> bool:
        again = (await api.get(f"/v1/workflow-runs/{run['id']}")).json()
        return bool(again["execution_state"] == "NOT_STARTED")

    await wait_until(draft_settled, within=30)


# -- 3. limits ------------------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_with_413_before_parsing(api: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    resp = await post_raw(api, "/wf/", big)
    assert resp.status_code == 413
    assert len(resp.content) < 4096

    async def chunks() -> Any:  # no content-length: counted as it arrives
        for _ in range(3):
            yield b" " * (1024 * 1024)

    streamed = await api.post("/v1/folders", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert streamed.json()["code"] == "payload_too_large"


async def test_a_validation_error_echoes_only_a_little_of_the_input(api: httpx.AsyncClient) -> None:
    resp = await api.post("/wf/", json={"name": "x", "definition": {"nodes": "n" * 1_500_000, "links": []}})
    assert resp.status_code == 422
    assert len(resp.content) < 4096, len(resp.content)


async def test_a_graph_over_the_size_limits_is_refused_with_422(api: httpx.AsyncClient) -> None:
    nodes = [input_node()] + [node(f"s{i}", "StaticValueNode", values={"v": i}) for i in range(1001)]
    resp = await api.post("/wf/", json={"name": "big", "definition": definition(nodes, [])})
    assert resp.status_code == 422, resp.text[:500]
    assert "at most 1000" in resp.json()["detail"]
    defn = double_graph()
    defn["nodes"][1]["config"]["code"] = "# " + "x" * 300_000 + "\nreturn {'y': 1}"
    resp = await api.post("/wf/", json={"name": "fat", "definition": defn})
    assert resp.status_code == 422 and "config" in resp.json()["detail"]


async def test_a_run_over_temporals_payload_limit_is_refused_with_413_and_stores_nothing(
    api: httpx.AsyncClient,
) -> None:
    # Each request is within the body limit; the run's input (its graph with the two pinned
    # subworkflows, 1.2 MB each) is over Temporal's 2 MB blob limit.
    code = "# " + "x" * 200_000 + "\nreturn {'y': 1}"
    fat = definition(
        [input_node()]
        + [python_node(f"p{i}", code, {"y": "integer"}) for i in range(6)]
        + [output_node({"y": "p0.y"})],
        [link("input_node", f"p{i}") for i in range(6)] + [link("p0", "output_node")],
    )
    children = [await new_workflow(api, fat) for _ in range(2)]
    parent = definition(
        [input_node()]
        + [node(f"s{i}", "SubworkflowNode", workflow_id=child) for i, child in enumerate(children)]
        + [output_node({"y": "s0.y"})],
        [link("input_node", "s0"), link("input_node", "s1"), link("s0", "output_node")],
    )
    wf = await new_workflow(api, parent)
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    assert resp.status_code == 413, resp.text[:500]
    assert "Temporal accepts at most" in resp.json()["detail"]
    assert (await api.get(f"/wf/{wf}/runs/")).json() == []


# -- 4. the API stays responsive -----------------------------------------------------------------------


async def test_health_is_answered_while_a_large_body_is_being_checked(api: httpx.AsyncClient) -> None:
    """A body just under the limit is parsed and walked off the event loop: /health, sent after the
    big request started, is answered before it finishes."""
    inputs = {"input_node": {"x": 1, "rows": [{"a": i, "b": [i, str(i)]} for i in range(50_000)]}}
    body = raw({"initial_inputs": inputs})
    assert len(body) < 2 * 1024 * 1024
    order: list[str] = []

    async def big() -> None:
        await post_raw(api, f"/wf/{uuid.uuid4()}/start_run/", body)
        order.append("big")

    async def health() -> None:
        await asyncio.sleep(0.05)
        assert (await api.get("/health")).status_code == 200
        order.append("health")

    await asyncio.gather(big(), health())
    assert order == ["health", "big"]


# -- 6. tenancy ----------------------------------------------------------------------------------------


async def test_common_files_of_another_tenant_are_not_found(
    api: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    theirs = await make_tenant_document(api, other_tenant)
    root = await root_folder(api)
    resp = await api.post(
        "/v1/workflow-definitions",
        json={
            "name": f"f-{uuid.uuid4().hex[:8]}",
            "parent_path_part_id": root,
            "approval_required": False,
            "common_file_path_part_ids": [theirs],
        },
    )
    assert resp.status_code == 404, resp.text
    made = await api.post(
        "/v1/workflow-definitions",
        json={"name": f"f-{uuid.uuid4().hex[:8]}", "parent_path_part_id": root, "approval_required": False},
    )
    body = {"name": made.json()["name"], "is_active": True, "approval_required": False}
    put = await api.put(
        f"/v1/workflow-definitions/{made.json()['id']}", json={**body, "common_file_path_part_ids": [theirs]}
    )
    assert put.status_code == 404, put.text
    assert (await api.get(f"/v1/workflow-definitions/{made.json()['id']}")).json()[
        "common_file_path_part_ids"
    ] in (None, [])


async def make_tenant_document(api: httpx.AsyncClient, owner: Tenant) -> str:
    headers = dict(owner.headers)
    root = (await api.get("/v1/folders", headers=headers)).json()["items"][0]["path_part_id"]
    up = await api.post(
        "/v1/documents/ingest",
        files={"file": ("secret.txt", b"theirs", "text/plain")},
        data={"path_part_id": root},
        headers=headers,
    )
    assert up.status_code == 201, up.text
    doc = (await api.get(f"/v1/documents/{up.json()['document_id']}", headers=headers)).json()
    return str(doc["path_part_id"])


async def test_lists_answer_even_with_a_stored_row_nested_too_deep(api: httpx.AsyncClient, db: Any) -> None:
    """A row stored before the edge checks existed (inputs nested 600 deep) must not break lists."""
    from sqlalchemy import update

    from db.models import Run

    wf = await new_workflow(api)
    run = (await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})).json()
    [stored] = (await api.get(f"/wf/{wf}/runs/")).json()
    async with db() as session, session.begin():
        await session.execute(
            update(Run)
            .where(Run.id == uuid.UUID(stored["id"]))
            .values(initial_inputs={"input_node": nested(600)})
        )
    assert run is not None
    for path in ("/run/", f"/wf/{wf}/runs/", f"/run/{stored['id']}/", f"/run/{stored['id']}/status/"):
        resp = await api.get(path)
        assert resp.status_code == 200, (path, resp.text[:300])
    v1 = await api.get("/v1/workflow-runs", params={"page_size": 100})
    assert v1.status_code == 200, v1.text[:300]
