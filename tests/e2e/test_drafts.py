"""Drafts through HTTP: the editor's autosave stores whatever a user is drawing and gets it back
unchanged, with its problems; every kind of run of a draft is refused with 422 before anything exists."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import ksapi
import pytest
from ksapi.exceptions import UnprocessableEntityException

from tests.builders import double_graph, link
from tests.conftest import Tenant
from tests.e2e.v1_client import V1, new_definition, raw, root_folder, set_graph, v1_graph

pytestmark = pytest.mark.e2e


def editor_node(node_id: str, node_type: str, title: str, **config: Any) -> dict[str, Any]:
    """A node as PySpur's editor drops it: a UUID-like id, `<Type>_<n>` title, UI keys in the config."""
    return {
        "id": node_id,
        "title": title,
        "node_type": node_type,
        "config": {"title": title, "type": "object", **config},
        "coordinates": {"x": 420.5, "y": 96.0},
        "dimensions": None,
        "parent_id": None,
        "subworkflow": None,
    }


def half_drawn() -> dict[str, Any]:
    """The double graph plus one freshly dropped node of each kind whose config has null fields."""
    raw_ = double_graph()
    raw_["nodes"] += [
        editor_node("n-out", "OutputNode", "OutputNode_1", output_map=None),
        editor_node("n-static", "StaticValueNode", "StaticValueNode_1", values=None),
        editor_node("n-sub", "SubworkflowNode", "SubworkflowNode_1", workflow_id=None, input_map=None),
        editor_node(
            "n-loop",
            "ForLoopNode",
            "ForLoopNode_1",
            num_iterations=1,
            input_map=None,
            subworkflow={"nodes": [], "links": []},
        ),
        {
            **editor_node(
                "n-loop_input", "InputNode", "ForLoopNode_1_input", output_schema={}, output_json_schema=None
            ),
            "parent_id": "n-loop",
        },
        {
            **editor_node("n-loop_output", "OutputNode", "ForLoopNode_1_output", output_map=None),
            "parent_id": "n-loop",
        },
    ]
    raw_["links"] += [link("py1", "n-out"), link("n-out", "py1")]  # a cycle drawn by mistake
    raw_["test_inputs"] = [{"id": 1, "x": "3"}]
    return raw_


async def counts(api: httpx.AsyncClient, workflow_id: str) -> tuple[int, int]:
    runs = await api.get("/run/", params={"parent_only": False, "page_size": 100})
    versions = await api.get(f"/wf/{workflow_id}/versions/", params={"page_size": 100})
    return len(runs.json()), len(versions.json())


async def test_autosave_of_a_half_drawn_graph_is_stored_and_comes_back_unchanged_with_its_problems(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/wf/", json={"name": f"draw-{uuid.uuid4().hex[:6]}"})
    workflow_id = created.json()["id"]
    assert created.json()["problems"] == []
    drawn = half_drawn()
    saved = await api.put(f"/wf/{workflow_id}/", json={"name": created.json()["name"], "definition": drawn})
    assert saved.status_code == 200, saved.text
    got = (await api.get(f"/wf/{workflow_id}/")).json()
    assert got["definition"] == saved.json()["definition"]
    stored = {n["id"]: n for n in got["definition"]["nodes"]}
    for sent in drawn["nodes"]:
        assert stored[sent["id"]]["config"] == sent["config"], sent["id"]
        assert stored[sent["id"]]["title"] == sent["title"]
    assert got["definition"]["test_inputs"] == [{"id": 1, "x": "3"}]
    assert saved.json()["problems"] == got["problems"]
    faulty = {p["node_id"] for p in got["problems"]}
    assert {"n-out", "n-static", "n-sub", "n-loop_output"} <= faulty
    assert any(p["detail"].startswith("The graph has a cycle") for p in got["problems"])
    listed = (await api.get("/wf/", params={"page_size": 100})).json()
    assert next(w for w in listed if w["id"] == workflow_id)["problems"] == got["problems"]


async def test_every_pyspur_run_of_a_draft_is_refused_naming_the_fault_and_creates_nothing(
    api: httpx.AsyncClient,
) -> None:
    raw_ = double_graph()
    raw_["nodes"].append(editor_node("n-static", "StaticValueNode", "StaticValueNode_1", values=None))
    wf = (await api.post("/wf/", json={"name": f"refuse-{uuid.uuid4().hex[:6]}", "definition": raw_})).json()
    ds = await api.post(
        "/ds/", params={"name": f"ds-{uuid.uuid4().hex[:6]}"}, files={"file": ("r.csv", b"x\n1\n")}
    )
    before = await counts(api, wf["id"])
    inputs = {"initial_inputs": {"input_node": {"x": 1}}}
    calls = [
        ("run", inputs),
        ("start_run", inputs),
        ("run_partial", {"node_id": "py1", **inputs}),
        ("start_batch_run", {"dataset_id": ds.json()["id"]}),
    ]
    for path, body in calls:
        r = await api.post(f"/wf/{wf['id']}/{path}/", json=body)
        assert r.status_code == 422, (path, r.text)
        assert "n-static" in r.json()["detail"] and "values" in r.json()["detail"], path
    assert await counts(api, wf["id"]) == before


def test_a_v1_run_of_a_draft_is_refused_at_create_and_at_start(v1: V1, live_api: str, tenant: Tenant) -> None:
    d = new_definition(v1, root_folder(v1))
    set_graph(live_api, tenant.key, d.id, v1_graph())
    armed = v1.defs.create_workflow_run(d.id)  # created while the graph could run
    drafted = v1_graph()
    drafted["nodes"].append(editor_node("n-out", "OutputNode", "OutputNode_1", output_map=None))
    set_graph(live_api, tenant.key, d.id, drafted)
    with pytest.raises(UnprocessableEntityException) as caught:
        v1.defs.create_workflow_run(d.id)
    assert "n-out" in str(caught.value.body)
    with pytest.raises(UnprocessableEntityException) as caught:
        v1.runs.start_workflow_run(armed.id, ksapi.StartWorkflowRunRequest(user_message="go"))
    assert "output_map" in str(caught.value.body)
    assert v1.runs.get_workflow_run(armed.id).execution_state.value == "NOT_STARTED"
    with raw(live_api, tenant.key) as http:
        assert http.get(f"/wf/{d.id}/versions/").json() == []
