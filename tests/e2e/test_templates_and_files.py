"""`/templates/` (list, instantiate, run) and `/files/…` (test files per workflow and tenant), through HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, reaches

pytestmark = pytest.mark.e2e


async def instantiate(api: httpx.AsyncClient, file_name: str) -> dict[str, Any]:
    listed = (await api.get("/api/templates/")).json()
    template = next(t for t in listed if t["file_name"] == file_name)
    r = await api.post("/api/templates/instantiate/", json=template)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_templates_are_listed_in_pyspurs_shape(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/templates/")
    assert r.status_code == 200
    assert {t["file_name"] for t in r.json()} == {
        "approval_gate.json",
        "number_router.json",
        "running_total_loop.json",
    }
    for t in r.json():
        assert set(t) == {"name", "description", "features", "file_name"}
        assert t["name"] and t["description"] and t["features"]


@pytest.mark.parametrize(
    ("file_name", "inputs", "expected"),
    [
        ("number_router.json", {"n": "7"}, {"label": "small odd number"}),
        ("number_router.json", {"n": 500}, {"label": "big even number"}),
        ("running_total_loop.json", {"start": 10, "step": 5}, {"total": 25}),
    ],
)
async def test_an_instantiated_template_runs(
    api: httpx.AsyncClient, file_name: str, inputs: dict[str, Any], expected: dict[str, Any]
) -> None:
    wf = await instantiate(api, file_name)
    assert wf["problems"] == []
    r = await api.post(f"/api/wf/{wf['id']}/run/", json={"initial_inputs": {"input_node": inputs}})
    assert r.status_code == 200, r.text
    assert r.json()["output_node"] == expected


async def test_the_approval_template_waits_for_a_person_then_completes(api: httpx.AsyncClient) -> None:
    wf = await instantiate(api, "approval_gate.json")
    again = await instantiate(api, "approval_gate.json")
    assert again["name"] != wf["name"]  # names are made unique, as on create
    inputs = {"input_node": {"request": "New laptop", "amount": "1299.5"}}
    r = await api.post(f"/api/wf/{wf['id']}/start_run/", json={"initial_inputs": inputs})
    run_id = r.json()["id"]
    await reaches(api, run_id, "PAUSED", within=30)
    decision = {"inputs": {}, "user_id": "current-user", "action": "APPROVE", "comments": "ok"}
    assert (await api.post(f"/api/wf/process_pause_action/{run_id}/", json=decision)).status_code == 200
    done = await reaches(api, run_id, "COMPLETED", within=30)
    assert done["outputs"]["output_node"] == {"summary": "New laptop (1299.50)", "approved": True}


@pytest.mark.parametrize("file_name", ["nope.json", "../template_files/number_router.json", "/etc/passwd"])
async def test_instantiating_an_unknown_template_is_404(api: httpx.AsyncClient, file_name: str) -> None:
    body = {"name": "x", "description": "", "features": [], "file_name": file_name}
    r = await api.post("/api/templates/instantiate/", json=body)
    assert r.status_code == 404
    assert r.json()["detail"] == "Template not found"


async def upload(api: httpx.AsyncClient, workflow_id: str, name: str, data: bytes) -> str:
    r = await api.post(
        "/api/wf/upload_test_files/",
        data={"workflow_id": workflow_id, "node_id": "input_node"},
        files=[("files", (name, data))],
    )
    assert r.status_code == 200, r.text
    (path,) = r.json()["input_node"]
    path_: str = path
    return path_


async def test_uploaded_test_files_are_listed_read_and_deleted_by_their_tenant(
    api: httpx.AsyncClient,
) -> None:
    wf = (await api.post("/api/wf/", json={"name": f"files-{uuid.uuid4().hex[:6]}"})).json()
    path = await upload(api, wf["id"], "notes.txt", b"hello")
    got = await api.get(f"/api/files/{path}")
    assert got.status_code == 200
    assert got.content == b"hello"
    assert got.headers["content-type"].startswith("text/plain")
    listed = (await api.get(f"/api/files/{wf['id']}")).json()
    assert [(f["path"], f["size"], f["workflow_id"]) for f in listed] == [(path, 5, wf["id"])]
    assert path in {f["path"] for f in (await api.get("/api/files/")).json()}
    name = path.rsplit("/", 1)[-1]
    assert (await api.delete(f"/api/files/{wf['id']}/{name}")).status_code == 200
    assert (await api.get(f"/api/files/{path}")).status_code == 404
    assert (await api.get(f"/api/files/{wf['id']}")).json() == []


async def test_an_uploaded_page_is_served_as_a_download_never_as_html(api: httpx.AsyncClient) -> None:
    wf = (await api.post("/api/wf/", json={"name": f"html-{uuid.uuid4().hex[:6]}"})).json()
    path = await upload(api, wf["id"], "page.html", b"<script>alert(1)</script>")
    got = await api.get(f"/api/files/{path}")
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["x-content-type-options"] == "nosniff"


async def test_test_files_are_invisible_to_other_tenants_and_paths_cannot_leave_the_folder(
    api: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    wf = (await api.post("/api/wf/", json={"name": f"mine-{uuid.uuid4().hex[:6]}"})).json()
    path = await upload(api, wf["id"], "secret.txt", b"mine")
    hdr = other_tenant.headers
    assert (await api.get(f"/api/files/{path}", headers=hdr)).status_code == 404
    assert (await api.get(f"/api/files/{wf['id']}", headers=hdr)).status_code == 404
    assert path not in {f["path"] for f in (await api.get("/api/files/", headers=hdr)).json()}
    name = path.rsplit("/", 1)[-1]
    assert (await api.delete(f"/api/files/{wf['id']}/{name}", headers=hdr)).status_code == 404
    for bad in (
        f"test_files/{wf['id']}/..%2F..%2Fpg%2Fpostgresql.conf",
        f"test_files/{wf['id']}/.hidden",
        "test_files/../admin-api-key",
        f"run_files/{wf['id']}/{name}",
        "admin-api-key",
    ):
        assert (await api.get(f"/api/files/{bad}")).status_code == 404, bad
    assert (await api.get(f"/api/files/{path}")).content == b"mine"
