"""Partial runs, SubworkflowNode child runs and ForLoopNode bodies, through HTTP on the real stack."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.builders import definition, input_node, link, node, output_node, python_node

pytestmark = pytest.mark.e2e


async def make_workflow(api: httpx.AsyncClient, defn: dict[str, Any]) -> str:
    r = await api.post("/wf/", json={"name": f"wf-{uuid.uuid4().hex[:8]}", "definition": defn})
    assert r.status_code == 200, r.text
    workflow_id: str = r.json()["id"]
    return workflow_id


def chain() -> dict[str, Any]:
    """input(x) -> a (y = x + 1) -> b (z = y * 10) -> output(z)."""
    return definition(
        [
            input_node(),
            python_node("a", 'return {"y": input_model.input_node.x + 1}', {"y": "integer"}),
            python_node("b", 'return {"z": input_model.a.y * 10}', {"z": "integer"}),
            output_node({"z": "b.z"}),
        ],
        [link("input_node", "a"), link("a", "b"), link("b", "output_node")],
    )


async def all_runs(api: httpx.AsyncClient) -> int:
    return len((await api.get("/run/", params={"parent_only": False, "page_size": 100})).json())


# -- partial runs ------------------------------------------------------------------------------------


async def test_partial_run_uses_precomputed_outputs_and_keeps_their_fields(api: httpx.AsyncClient) -> None:
    workflow_id = await make_workflow(api, chain())
    before = await all_runs(api)
    r = await api.post(
        f"/wf/{workflow_id}/run_partial/",
        json={
            "node_id": "b",
            "initial_inputs": {"input_node": {"x": 100}},
            "partial_outputs": {"a": {"y": 5, "note": "kept"}},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["b"] == {"z": 50}  # computed from the precomputed y, not from x = 100
    assert body["a"] == {"y": 5, "note": "kept"}
    assert "output_node" not in body  # downstream of the target is not run
    assert await all_runs(api) == before  # nothing is stored


async def test_partial_run_without_precomputed_outputs_runs_the_upstream_nodes(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await make_workflow(api, chain())
    r = await api.post(
        f"/wf/{workflow_id}/run_partial/", json={"node_id": "b", "initial_inputs": {"input_node": {"x": 2}}}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"input_node": {"x": 2}, "a": {"y": 3}, "b": {"z": 30}}


async def test_partial_run_refuses_bad_requests_with_clear_errors(api: httpx.AsyncClient) -> None:
    workflow_id = await make_workflow(api, chain())
    url = f"/wf/{workflow_id}/run_partial/"
    inputs = {"input_node": {"x": 1}}
    cases = [
        ({"node_id": "nope", "initial_inputs": inputs}, 422, "not a node"),
        ({"node_id": "b", "initial_inputs": inputs, "partial_outputs": {"zz": {}}}, 422, "'zz'"),
        ({"node_id": "b", "initial_inputs": inputs, "partial_outputs": {"a": [1]}}, 422, "must be an object"),
        ({"node_id": "b"}, 422, "initial_inputs"),
        ({"node_id": "b", "initial_inputs": {"input_node": {"x": "one"}}}, 422, "must be integer"),
    ]
    for body, status, text in cases:
        r = await api.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        assert text in r.json()["detail"], (body, r.text)
    r = await api.post(f"/wf/{uuid.uuid4()}/run_partial/", json={"node_id": "b"})
    assert r.status_code == 404


async def test_partial_run_reports_a_failing_node(api: httpx.AsyncClient) -> None:
    defn = chain()
    defn["nodes"][2]["config"]["code"] = 'raise RuntimeError("boom")'
    workflow_id = await make_workflow(api, defn)
    r = await api.post(
        f"/wf/{workflow_id}/run_partial/", json={"node_id": "b", "initial_inputs": {"input_node": {"x": 1}}}
    )
    assert r.status_code == 400
    assert "boom" in r.json()["detail"]


# -- subworkflows ------------------------------------------------------------------------------------


def shout() -> dict[str, Any]:
    """input(text) -> upper -> output(shout)."""
    return definition(
        [
            input_node({"text": "string"}),
            python_node("upper", 'return {"y": input_model.input_node.text.upper()}', {"y": "string"}),
            output_node({"shout": "upper.y"}),
        ],
        [link("input_node", "upper"), link("upper", "output_node")],
    )


def calls(workflow_id: str, out_field: str = "shout") -> dict[str, Any]:
    """input(text) -> sub (runs `workflow_id`) -> output(result)."""
    return definition(
        [
            input_node({"text": "string"}),
            node("sub", "SubworkflowNode", workflow_id=workflow_id, input_map={"text": "input_node.text"}),
            output_node({"result": f"sub.{out_field}"}),
        ],
        [link("input_node", "sub"), link("sub", "output_node")],
    )


async def test_nested_subworkflows_run_as_child_runs(api: httpx.AsyncClient) -> None:
    inner = await make_workflow(api, shout())
    middle = await make_workflow(api, calls(inner))
    outer = await make_workflow(api, calls(middle, out_field="result"))
    r = await api.post(f"/wf/{outer}/run/", json={"initial_inputs": {"input_node": {"text": "hi"}}})
    assert r.status_code == 200, r.text
    assert r.json()["output_node"] == {"result": "HI"}
    run = (await api.get("/run/", params={"page_size": 1})).json()[0]
    assert run["workflow_id"] == outer and run["status"] == "COMPLETED"
    children = (await api.get(f"/run/{run['id']}/children/")).json()
    assert [(c["workflow_id"], c["status"], c["run_type"]) for c in children] == [
        (middle, "COMPLETED", "subworkflow")
    ]
    grandchildren = (await api.get(f"/run/{children[0]['id']}/children/")).json()
    assert [(g["workflow_id"], g["status"]) for g in grandchildren] == [(inner, "COMPLETED")]
    assert grandchildren[0]["outputs"]["output_node"] == {"shout": "HI"}
    sub_task = next(t for t in run["tasks"] if t["node_id"] == "sub")
    assert sub_task["subworkflow_output"] == {"run_id": children[0]["id"]}


async def test_workflows_calling_each_other_in_a_cycle_are_stored_but_cannot_run(
    api: httpx.AsyncClient,
) -> None:
    inner = await make_workflow(api, shout())
    outer = await make_workflow(api, calls(inner))
    r = await api.put(
        f"/wf/{inner}/", json={"name": f"cyc-{uuid.uuid4().hex[:6]}", "definition": calls(outer)}
    )
    assert r.status_code == 200, r.text
    assert [p["node_id"] for p in r.json()["problems"]] == ["sub"]
    assert "cycle" in r.json()["problems"][0]["detail"]
    before = await all_runs(api)
    for workflow_id in (inner, outer):
        run = await api.post(
            f"/wf/{workflow_id}/start_run/", json={"initial_inputs": {"input_node": {"text": "hi"}}}
        )
        assert run.status_code == 422, run.text
        assert "cycle" in run.json()["detail"]
    assert await all_runs(api) == before
    r = await api.post(
        "/wf/", json={"name": f"x-{uuid.uuid4().hex[:6]}", "definition": calls(str(uuid.uuid4()))}
    )
    assert r.status_code == 200
    assert "not found" in r.json()["problems"][0]["detail"]


async def test_a_parent_whose_subworkflow_is_a_draft_is_refused_naming_the_child_fault(
    api: httpx.AsyncClient,
) -> None:
    inner = await make_workflow(api, shout())
    outer = await make_workflow(api, calls(inner))
    drafted = shout()
    drafted["nodes"].append(node("loose", "OutputNode", output_map=None))
    r = await api.put(f"/wf/{inner}/", json={"name": f"in-{uuid.uuid4().hex[:6]}", "definition": drafted})
    assert [p["node_id"] for p in r.json()["problems"]] == ["loose"]
    got = (await api.get(f"/wf/{outer}/")).json()
    assert [p["node_id"] for p in got["problems"]] == ["sub"]
    assert "loose" in got["problems"][0]["detail"]
    before = await all_runs(api)
    run = await api.post(f"/wf/{outer}/run/", json={"initial_inputs": {"input_node": {"text": "hi"}}})
    assert run.status_code == 422
    assert "output_map" in run.json()["detail"] and "loose" in run.json()["detail"]
    assert await all_runs(api) == before


# -- loops -------------------------------------------------------------------------------------------


def counting_loop(iterations: int) -> dict[str, Any]:
    """input(x) -> loop (count += 1 per iteration, seen = earlier iterations) -> output(count, seen)."""
    body_code = (
        "seen = len(input_model.loop_in.loop_history.get('step', []))\n"
        'return {"count": input_model.loop_in.count + 1, "seen": seen}'
    )
    nodes = [
        input_node(),
        node("loop", "ForLoopNode", num_iterations=iterations, input_map={"count": "input_node.x"}),
        {**input_node({"count": "integer"}, node_id="loop_in"), "parent_id": "loop"},
        {**python_node("step", body_code, {"count": "integer", "seen": "integer"}), "parent_id": "loop"},
        {
            **output_node({"count": "step.count", "seen": "step.seen"}, node_id="loop_out"),
            "parent_id": "loop",
        },
        output_node({"count": "loop.count", "seen": "loop.seen"}),
    ]
    links = [
        link("input_node", "loop"),
        link("loop_in", "step"),
        link("step", "loop_out"),
        link("loop", "output_node"),
    ]
    return definition(nodes, links)


@pytest.mark.parametrize("iterations", [1, 5])
async def test_for_loop_runs_its_body_each_iteration_with_history(
    api: httpx.AsyncClient, iterations: int
) -> None:
    workflow_id = await make_workflow(api, counting_loop(iterations))
    r = await api.post(f"/wf/{workflow_id}/run/", json={"initial_inputs": {"input_node": {"x": 10}}})
    assert r.status_code == 200, r.text
    assert r.json()["output_node"] == {"count": 10 + iterations, "seen": iterations - 1}
    run = (await api.get("/run/", params={"page_size": 1})).json()[0]
    assert run["status"] == "COMPLETED"
    loop_task = next(t for t in run["tasks"] if t["node_id"] == "loop" and t["iteration"] is None)
    assert [h["count"] for h in loop_task["subworkflow_output"]["step"]] == [
        11 + i for i in range(iterations)
    ]
    assert loop_task["subworkflow"]["nodes"][0]["id"] == "loop_in"
    steps = [t for t in run["tasks"] if t["node_id"] == "step"]
    assert [t["iteration"] for t in steps] == list(range(1, iterations + 1))
    assert {t["parent_task_id"] for t in steps} == {loop_task["id"]}
    assert all(t["status"] == "COMPLETED" for t in steps)
    # The history is kept once, on the loop's task, not copied into every iteration's tasks.
    assert all("loop_history" not in t["outputs"] for t in run["tasks"] if t["node_id"] == "loop_in")


async def test_loop_faults_are_stored_as_drafts_and_refused_at_run_time(api: httpx.AsyncClient) -> None:
    no_output = counting_loop(2)
    no_output["nodes"] = [n for n in no_output["nodes"] if n["id"] != "loop_out"]
    no_output["links"] = [lk for lk in no_output["links"] if lk["target_id"] != "loop_out"]
    crossing = counting_loop(2)
    crossing["links"].append(link("input_node", "step"))
    too_many = counting_loop(2)
    too_many["nodes"][1]["config"]["num_iterations"] = 100_000
    for defn, text in [(no_output, "OutputNode"), (crossing, "crosses"), (too_many, "num_iterations")]:
        r = await api.post("/wf/", json={"name": f"bad-{uuid.uuid4().hex[:6]}", "definition": defn})
        assert r.status_code == 200, r.text
        assert text in r.json()["problems"][0]["detail"]
        run = await api.post(f"/wf/{r.json()['id']}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
        assert run.status_code == 422, run.text
        assert text in run.json()["detail"]


async def test_a_workflow_another_runs_as_a_subworkflow_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    inner = await make_workflow(api, shout())
    outer = await make_workflow(api, calls(inner))
    r = await api.delete(f"/wf/{inner}/")
    assert r.status_code == 409
    assert "subworkflow" in r.json()["detail"]
    assert (await api.delete(f"/wf/{outer}/")).status_code in (200, 204)
    assert (await api.delete(f"/wf/{inner}/")).status_code in (200, 204)
