"""Run inputs as PySpur's editor sends them (text cells, blank cells left out), through HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.builders import definition, double_graph, input_node, link, output_node, python_node
from tests.conftest import reaches

pytestmark = pytest.mark.e2e


async def make_workflow(api: httpx.AsyncClient, defn: dict[str, Any]) -> str:
    r = await api.post("/wf/", json={"name": f"typed-{uuid.uuid4().hex[:8]}", "definition": defn})
    assert r.status_code == 200, r.text
    workflow_id: str = r.json()["id"]
    return workflow_id


def summing() -> dict[str, Any]:
    """input(n: integer, tags: array, on: boolean, note: optional integer) -> py -> output."""
    code = (
        "i = input_model.input_node\n"
        'return {"total": i.n + sum(i.tags), "on": i.on, "note": getattr(i, "note", None)}'
    )
    fields = {"n": "integer", "tags": "array", "on": "boolean", "note": "integer"}
    return definition(
        [
            input_node(fields, required=["n", "tags", "on"]),
            python_node("py", code, {"total": "integer", "on": "boolean"}),
            output_node({"total": "py.total", "on": "py.on", "note": "py.note"}),
        ],
        [link("input_node", "py"), link("py", "output_node")],
    )


async def runs(api: httpx.AsyncClient) -> int:
    return len((await api.get("/run/", params={"parent_only": False, "page_size": 100})).json())


async def test_text_inputs_from_the_editor_run_with_the_declared_types(api: httpx.AsyncClient) -> None:
    workflow_id = await make_workflow(api, summing())
    cells = {"n": "21", "tags": "[1, 2]", "on": "true"}  # "note" left blank: the editor leaves it out
    r = await api.post(f"/wf/{workflow_id}/start_run/", json={"initial_inputs": {"input_node": cells}})
    assert r.status_code == 200, r.text
    run = await reaches(api, r.json()["id"], "COMPLETED", within=30)
    assert run["initial_inputs"] == {"input_node": {"n": 21, "tags": [1, 2], "on": True}}
    assert run["outputs"]["output_node"] == {"total": 24, "on": True, "note": None}


async def test_a_text_input_that_cannot_convert_is_422_naming_the_field_and_creates_no_run(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await make_workflow(api, summing())
    before = await runs(api)
    for cells, fragment in [
        ({"n": "abc", "tags": "[]", "on": "true"}, "'n' must be integer"),
        ({"n": "1", "tags": "[", "on": "true"}, "'tags' must be array"),
        ({"n": "1", "tags": "[]", "on": ""}, "Missing required input field 'on'"),
    ]:
        r = await api.post(f"/wf/{workflow_id}/run/", json={"initial_inputs": {"input_node": cells}})
        assert r.status_code == 422, r.text
        assert fragment in r.json()["detail"]
    assert await runs(api) == before


async def test_a_partial_run_converts_text_inputs_too(api: httpx.AsyncClient) -> None:
    workflow_id = await make_workflow(api, double_graph())
    r = await api.post(
        f"/wf/{workflow_id}/run_partial/",
        json={"node_id": "py1", "initial_inputs": {"input_node": {"x": "4"}}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["py1"] == {"y": 8}


async def test_dataset_rows_convert_json_text_cells_and_blank_cells_are_absent(
    api: httpx.AsyncClient,
) -> None:
    csv = b'n,tags,on,note\n1,"[10, 20]",yes,\n2,[],false,5\n'
    ds = await api.post("/ds/", params={"name": f"ds-{uuid.uuid4().hex[:6]}"}, files={"file": ("r.csv", csv)})
    assert ds.status_code == 200, ds.text
    workflow_id = await make_workflow(api, summing())
    r = await api.post(f"/wf/{workflow_id}/start_batch_run/", json={"dataset_id": ds.json()["id"]})
    assert r.status_code == 200, r.text
    done = await reaches(api, r.json()["id"], "COMPLETED", within=60)
    lines = [
        json.loads(line)
        for line in (await api.get(f"/of/{done['output_file_id']}/download/")).text.splitlines()
    ]
    assert [line["input_node"] for line in lines] == [
        {"n": 1, "tags": [10, 20], "on": True},
        {"n": 2, "tags": [], "on": False, "note": 5},
    ]
    assert [line["output_node"]["total"] for line in lines] == [31, 2]


def titled(node: dict[str, Any], title: str) -> dict[str, Any]:
    """A node as the editor makes it: a UUID id and a title of its own."""
    return {**node, "title": title}


async def test_the_run_button_of_a_node_sends_titles_and_every_output_on_screen(
    api: httpx.AsyncClient,
) -> None:
    a, b, out = (str(uuid.uuid4()) for _ in range(3))
    defn = definition(
        [
            titled(input_node({"x": "integer"}, node_id="input_node"), "Start"),
            titled(python_node(a, 'return {"y": input_model.Start.x + 1}', {"y": "integer"}), "Add"),
            titled(python_node(b, 'return {"z": input_model.Add.y * 10}', {"z": "integer"}), "Times"),
            titled(output_node({"z": "Times.z"}, node_id=out), "Out"),
        ],
        [link("input_node", a), link(a, b), link(b, out)],
    )
    workflow_id = await make_workflow(api, defn)
    body = {
        "node_id": "Times",
        "initial_inputs": {"Start": {"x": "1"}},
        # On screen from an earlier run: Add's output is used; the target's and Out's are not inputs.
        "partial_outputs": {"Add": {"y": 5}, "Times": {"z": -1}, "Out": {"z": -1}},
        "rerun_predecessors": False,
    }
    r = await api.post(f"/wf/{workflow_id}/run_partial/", json=body)
    assert r.status_code == 200, r.text
    assert r.json()[b] == {"z": 50}
    assert r.json()[a] == {"y": 5}
    r = await api.post(f"/wf/{workflow_id}/run_partial/", json={**body, "partial_outputs": {}})
    assert r.json()[b] == {"z": 20}  # Add ran on the converted input 1


async def test_a_title_shared_by_several_nodes_is_refused_asking_for_the_id(api: httpx.AsyncClient) -> None:
    defn = double_graph()
    defn["nodes"][1]["title"] = "Same"
    defn["nodes"][2]["title"] = "Same"
    defn["nodes"][2]["config"]["output_map"] = {"y": "Same.y"}
    workflow_id = await make_workflow(api, defn)
    r = await api.post(
        f"/wf/{workflow_id}/run_partial/",
        json={"node_id": "Same", "initial_inputs": {"input_node": {"x": 1}}},
    )
    assert r.status_code == 422
    assert "py1, output_node" in r.json()["detail"] and "node id" in r.json()["detail"]
    r = await api.post(
        f"/wf/{workflow_id}/run_partial/", json={"node_id": "py1", "initial_inputs": {"input_node": {"x": 1}}}
    )
    assert r.json()["py1"] == {"y": 2}
