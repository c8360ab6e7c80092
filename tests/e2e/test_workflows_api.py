"""Workflow management endpoints, access rules and bad input, through HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.builders import definition, double_graph, input_node, link, node
from tests.conftest import Tenant

pytestmark = pytest.mark.e2e


async def test_create_without_definition_gets_the_default_graph(api: httpx.AsyncClient) -> None:
    resp = await api.post("/wf/", json={"name": f"d-{uuid.uuid4().hex[:6]}"})
    assert resp.status_code == 200
    defn = resp.json()["definition"]
    assert [n["node_type"] for n in defn["nodes"]] == ["InputNode"]
    assert defn["nodes"][0]["config"]["output_schema"] == {"input_1": "string"}


async def test_chatbot_spur_gets_the_chatbot_default(api: httpx.AsyncClient) -> None:
    resp = await api.post(
        "/wf/", json={"name": "bot", "definition": {"nodes": [], "links": [], "spur_type": "chatbot"}}
    )
    assert resp.status_code == 200
    types = [n["node_type"] for n in resp.json()["definition"]["nodes"]]
    assert types == ["InputNode", "OutputNode"]


async def test_names_are_made_unique_on_create(api: httpx.AsyncClient) -> None:
    name = f"same-{uuid.uuid4().hex[:6]}"
    first = (await api.post("/wf/", json={"name": name})).json()
    second = (await api.post("/wf/", json={"name": name})).json()
    assert first["name"] == name
    assert second["name"].startswith(name + " ") and second["name"] != name
    untitled = (await api.post("/wf/", json={"name": ""})).json()
    assert untitled["name"].startswith("Untitled Workflow")


async def test_rename_onto_an_existing_name_gives_409(api: httpx.AsyncClient) -> None:
    a = (await api.post("/wf/", json={"name": f"a-{uuid.uuid4().hex[:6]}"})).json()
    b = (await api.post("/wf/", json={"name": f"b-{uuid.uuid4().hex[:6]}"})).json()
    resp = await api.put(f"/wf/{b['id']}/", json={"name": a["name"], "definition": b["definition"]})
    assert resp.status_code == 409
    assert a["name"] in resp.json()["detail"]


async def test_update_without_definition_gives_400(api: httpx.AsyncClient) -> None:
    wf = (await api.post("/wf/", json={"name": f"u-{uuid.uuid4().hex[:6]}"})).json()
    resp = await api.put(f"/wf/{wf['id']}/", json={"name": "x"})
    assert resp.status_code == 400
    assert resp.json()["detail"] == "Workflow definition is required to update a workflow"


@pytest.mark.parametrize(
    ("defn", "fragment"),
    [
        (definition([input_node(), input_node()], []), "Duplicate node id"),
        (definition([input_node(), node("z", "NopeNode")], []), "NopeNode"),
        (definition([input_node(), node("p", "PythonFuncNode", code=5)], []), "code"),
    ],
)
async def test_definitions_of_the_wrong_shape_are_refused_with_422_naming_the_fault(
    api: httpx.AsyncClient, defn: dict[str, Any], fragment: str
) -> None:
    resp = await api.post("/wf/", json={"name": "bad", "definition": defn})
    assert resp.status_code == 422, resp.text
    assert fragment in str(resp.json()["detail"])


@pytest.mark.parametrize(
    ("defn", "fragment"),
    [
        (definition([node("s", "StaticValueNode", values={})], []), "exactly one root InputNode"),
        (definition([input_node()], [link("input_node", "ghost")]), "ghost"),
        (
            definition(
                [input_node(), node("r", "RouterNode", route_map={"a": {"conditions": []}})],
                [link("input_node", "r"), link("r", "input_node")],
            ),
            "InputNode",
        ),
    ],
)
async def test_graph_faults_are_stored_as_a_draft_whose_runs_are_refused_naming_the_fault(
    api: httpx.AsyncClient, defn: dict[str, Any], fragment: str
) -> None:
    resp = await api.post("/wf/", json={"name": f"draft-{uuid.uuid4().hex[:6]}", "definition": defn})
    assert resp.status_code == 200, resp.text
    assert any(fragment in p["detail"] for p in resp.json()["problems"])
    ends = [(lk["source_id"], lk["target_id"]) for lk in resp.json()["definition"]["links"]]
    assert ends == [(lk["source_id"], lk["target_id"]) for lk in defn["links"]]
    run = await api.post(f"/wf/{resp.json()['id']}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    assert run.status_code == 422, run.text
    assert fragment in run.json()["detail"]


async def test_get_list_reset_duplicate_delete(api: httpx.AsyncClient) -> None:
    name = f"life-{uuid.uuid4().hex[:6]}"
    wf = (
        await api.post("/wf/", json={"name": name, "description": "d", "definition": double_graph()})
    ).json()
    got = (await api.get(f"/wf/{wf['id']}/")).json()
    assert got["definition"]["nodes"][1]["id"] == "py1"
    listed = (await api.get("/wf/", params={"page_size": 100})).json()
    assert listed[0]["id"] == wf["id"]  # newest first
    dup = await api.post(f"/wf/{wf['id']}/duplicate/")
    assert dup.status_code == 200
    assert dup.json()["name"] == f"{name} (Copy)"
    assert dup.json()["definition"] == wf["definition"]
    reset = (await api.put(f"/wf/{wf['id']}/reset/")).json()
    assert [n["id"] for n in reset["definition"]["nodes"]] == ["input_node"]
    assert reset["name"] == name
    assert (await api.delete(f"/wf/{wf['id']}/")).status_code == 204
    assert (await api.get(f"/wf/{wf['id']}/")).status_code == 404


async def test_delete_workflow_removes_its_runs_and_versions(api: httpx.AsyncClient) -> None:
    wf = (
        await api.post("/wf/", json={"name": f"del-{uuid.uuid4().hex[:6]}", "definition": double_graph()})
    ).json()
    await api.post(f"/wf/{wf['id']}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    run_id = (await api.get(f"/wf/{wf['id']}/runs/")).json()[0]["id"]
    assert (await api.delete(f"/wf/{wf['id']}/")).status_code == 204
    assert (await api.get(f"/run/{run_id}/")).status_code == 404


async def test_output_variables_lists_leaf_outputs(api: httpx.AsyncClient) -> None:
    wf = (
        await api.post("/wf/", json={"name": f"ov-{uuid.uuid4().hex[:6]}", "definition": double_graph()})
    ).json()
    out = (await api.get(f"/wf/{wf['id']}/output_variables/")).json()
    assert out == [{"node_id": "output_node", "variable_name": "y", "prefixed_variable": "output_node-y"}]


async def test_upload_test_files_stores_under_the_data_dir(api: httpx.AsyncClient) -> None:
    wf = (await api.post("/wf/", json={"name": f"up-{uuid.uuid4().hex[:6]}"})).json()
    resp = await api.post(
        "/wf/upload_test_files/",
        data={"workflow_id": wf["id"], "node_id": "input_node"},
        files=[("files", ("../../evil name.txt", b"hello"))],
    )
    assert resp.status_code == 200, resp.text
    (path,) = resp.json()["input_node"]
    assert path.startswith(f"test_files/{wf['id']}/") and ".." not in path
    missing = await api.post(
        "/wf/upload_test_files/",
        data={"workflow_id": str(uuid.uuid4()), "node_id": "n"},
        files=[("files", ("a.txt", b"x"))],
    )
    assert missing.status_code == 404


async def test_upload_over_the_size_limit_is_refused(api: httpx.AsyncClient) -> None:
    wf = (await api.post("/wf/", json={"name": f"big-{uuid.uuid4().hex[:6]}"})).json()
    resp = await api.post(
        "/wf/upload_test_files/",
        data={"workflow_id": wf["id"], "node_id": "n"},
        files=[("files", ("big.bin", b"x" * (10 * 1024 * 1024 + 1)))],
    )
    assert resp.status_code == 413


@pytest.mark.parametrize(
    "path",
    [
        "/wf/not-a-uuid/",
        # Fixed ids no row has: test ids must be the same in every collecting process (pytest-xdist).
        "/wf/00000000-0000-4000-8000-00000000dead/",
        "/run/00000000-0000-4000-8000-00000000dead/",
        "/run/xyz/status/",
        "/wf/00000000-0000-4000-8000-00000000beef/versions/",
    ],
)
async def test_unknown_ids_give_404(api: httpx.AsyncClient, path: str) -> None:
    resp = await api.get(path)
    assert resp.status_code == 404
    assert "not found" in resp.json()["detail"]


@pytest.mark.parametrize("params", [{"page": 0}, {"page_size": 101}, {"page_size": 0}, {"page": "x"}])
async def test_out_of_range_pagination_gives_422(api: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert (await api.get("/wf/", params=params)).status_code == 422
    assert (await api.get("/run/", params=params)).status_code == 422


async def test_malformed_json_body_gives_422(api: httpx.AsyncClient) -> None:
    resp = await api.post("/wf/", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422


async def test_routes_work_under_api_prefix_and_without_trailing_slash(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/wf/")).status_code == 200
    assert (await api.get("/wf")).status_code == 200
    assert (await api.get("/api/node/supported_types")).status_code == 200


async def test_supported_types_lists_runnable_nodes_with_schemas(api: httpx.AsyncClient) -> None:
    body = (await api.get("/node/supported_types/")).json()
    names = {n["name"] for group in body.values() for n in group}
    assert {
        "InputNode",
        "OutputNode",
        "PythonFuncNode",
        "RouterNode",
        "CoalesceNode",
        "MergeNode",
        "StaticValueNode",
    } <= names
    py = next(n for group in body.values() for n in group if n["name"] == "PythonFuncNode")
    assert "code" in py["config"]["properties"]


async def test_requests_without_credentials_get_401(app_client: httpx.AsyncClient) -> None:
    resp = await app_client.get("/wf/", headers={"Authorization": ""})
    assert resp.status_code == 401
    bad = await app_client.get("/wf/", headers={"Authorization": "Bearer ks_wrong"})
    assert bad.status_code == 401


async def test_cookie_credentials_are_accepted_named_or_bare(
    app_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    named = await app_client.get("/wf/", headers={"Authorization": "", "Cookie": f"ks_uat={tenant.key}"})
    assert named.status_code == 200
    bare = await app_client.get("/wf/", headers={"Authorization": "", "Cookie": tenant.key})
    assert bare.status_code == 200


async def test_health_answers_without_credentials(app_client: httpx.AsyncClient) -> None:
    resp = await app_client.get("/health", headers={"Authorization": ""})
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


async def test_overlong_node_id_and_run_type_give_422(api: httpx.AsyncClient) -> None:
    defn = double_graph()
    defn["nodes"][2]["id"] = "n" * 201
    assert (await api.post("/wf/", json={"name": "long", "definition": defn})).status_code == 422
    wf = (
        await api.post("/wf/", json={"name": f"rt-{uuid.uuid4().hex[:6]}", "definition": double_graph()})
    ).json()
    resp = await api.post(
        f"/wf/{wf['id']}/start_run/",
        params={"run_type": "x" * 65},
        json={"initial_inputs": {"input_node": {"x": 1}}},
    )
    assert resp.status_code == 422
    assert (await api.get(f"/wf/{wf['id']}/runs/")).json() == []
