"""Batch runs over datasets, end to end: parent and child runs, output files, failures, cancel."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node
from tests.conftest import reaches, wait_until

pytestmark = pytest.mark.e2e


def csv_rows(n: int, column: str = "x") -> bytes:
    return (f"{column}\n" + "".join(f"{i}\n" for i in range(n))).encode()


async def make_dataset(api: httpx.AsyncClient, data: bytes, file_name: str = "rows.csv") -> str:
    r = await api.post(
        "/ds/", params={"name": f"ds-{uuid.uuid4().hex[:8]}"}, files={"file": (file_name, data)}
    )
    assert r.status_code == 200, r.text
    dataset_id: str = r.json()["id"]
    return dataset_id


async def make_workflow(api: httpx.AsyncClient, defn: dict[str, Any]) -> str:
    r = await api.post("/wf/", json={"name": f"batch-{uuid.uuid4().hex[:8]}", "definition": defn})
    assert r.status_code == 200, r.text
    workflow_id: str = r.json()["id"]
    return workflow_id


async def start_batch(
    api: httpx.AsyncClient, workflow_id: str, dataset_id: str, size: int = 4
) -> dict[str, Any]:
    r = await api.post(
        f"/wf/{workflow_id}/start_batch_run/", json={"dataset_id": dataset_id, "mini_batch_size": size}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def output_lines(api: httpx.AsyncClient, file_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/of/{file_id}/download/")
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


async def run_count(api: httpx.AsyncClient) -> int:
    return len((await api.get("/run/", params={"parent_only": False, "page_size": 100})).json())


async def test_batch_writes_one_line_per_row_in_dataset_order(api: httpx.AsyncClient) -> None:
    dataset_id = await make_dataset(api, csv_rows(30))
    workflow_id = await make_workflow(api, double_graph())
    parent = await start_batch(api, workflow_id, dataset_id, size=4)
    assert parent["run_type"] == "batch"
    assert parent["input_dataset_id"] == dataset_id
    assert parent["output_file_id"]
    done = await reaches(api, parent["id"], "COMPLETED", within=60)
    assert done["percentage_complete"] == 100.0
    assert (done["rows_total"], done["rows_done"], done["rows_failed"]) == (30, 30, 0)
    lines = await output_lines(api, parent["output_file_id"])
    assert [line["_row"] for line in lines] == list(range(30))
    assert [line["py1"]["y"] for line in lines] == [2 * i for i in range(30)]
    assert all(line["_error"] is None for line in lines)
    assert lines[3]["input_node"] == {"x": 3}  # CSV text converted to the declared integer
    children = (await api.get(f"/run/{parent['id']}/children/", params={"page_size": 100})).json()
    assert len(children) == 30
    assert {c["status"] for c in children} == {"COMPLETED"}
    assert {c["parent_run_id"] for c in children} == {parent["id"]}
    assert {line["_run_id"] for line in lines} == {c["id"] for c in children}
    child = next(c for c in children if c["id"] == lines[7]["_run_id"])
    assert child["outputs"]["output_node"] == {"y": 14}
    assert [t["node_id"] for t in child["tasks"]] == ["input_node", "py1", "output_node"]
    listed = (await api.get(f"/ds/{dataset_id}/list_runs/")).json()
    assert [r["id"] for r in listed] == [parent["id"]]


async def test_failing_rows_are_recorded_and_the_batch_ends_failed(api: httpx.AsyncClient) -> None:
    code = 'if input_model.input_node.x % 5 == 0:\n    raise ValueError("multiple of five")\nreturn {"y": 1}'
    dataset_id = await make_dataset(api, csv_rows(12))
    workflow_id = await make_workflow(api, double_graph(code))
    parent = await start_batch(api, workflow_id, dataset_id, size=3)
    done = await reaches(api, parent["id"], "FAILED", within=60)
    assert (done["rows_done"], done["rows_failed"]) == (12, 3)
    assert "3 of 12 rows" in done["error"]
    lines = await output_lines(api, parent["output_file_id"])
    assert [line["_row"] for line in lines] == list(range(12))
    failed = [line for line in lines if line["_error"]]
    assert [line["_row"] for line in failed] == [0, 5, 10]
    assert "multiple of five" in failed[0]["_error"]
    assert "py1" not in failed[0] and lines[1]["py1"] == {"y": 1}


async def test_rows_that_do_not_fit_the_input_fail_alone(api: httpx.AsyncClient) -> None:
    dataset_id = await make_dataset(api, b"x\n1\nnot a number\n3\n")
    workflow_id = await make_workflow(api, double_graph())
    parent = await start_batch(api, workflow_id, dataset_id)
    await reaches(api, parent["id"], "FAILED", within=60)
    lines = await output_lines(api, parent["output_file_id"])
    assert [line["_error"] is None for line in lines] == [True, False, True]
    assert "Input field 'x' must be integer" in lines[1]["_error"]


async def test_cancelling_a_batch_cancels_its_rows(api: httpx.AsyncClient) -> None:
    code = 'import time\ntime.sleep(0.4)\nreturn {"y": 1}'
    dataset_id = await make_dataset(api, csv_rows(40))
    workflow_id = await make_workflow(api, double_graph(code))
    parent = await start_batch(api, workflow_id, dataset_id, size=2)

    async def some_rows_done() -> bool:
        return bool((await api.get(f"/run/{parent['id']}/")).json()["rows_done"])

    await wait_until(some_rows_done, within=30)
    r = await api.post(f"/wf/cancel_workflow/{parent['id']}/")
    assert r.status_code == 200, r.text
    done = await reaches(api, parent["id"], "CANCELED", within=30)
    assert done["rows_done"] < 40
    # Written by the batch's own terminal write (not a repair): it knows how far the rows got.
    assert done["error"] == f"Run canceled after {done['rows_done']} of 40 rows"
    assert done["outputs"]["rows_total"] == 40
    children = (await api.get(f"/run/{parent['id']}/children/", params={"page_size": 100})).json()
    assert len(children) == done["rows_done"]
    assert all(c["status"] in ("COMPLETED", "CANCELED") for c in children)
    assert "RUNNING" not in {t["status"] for c in children for t in c["tasks"]}
    lines = await output_lines(api, parent["output_file_id"])
    assert len(lines) == len(children)


async def test_batch_checks_dataset_and_fields_before_creating_anything(api: httpx.AsyncClient) -> None:
    workflow_id = await make_workflow(api, double_graph())
    wrong_columns = await make_dataset(api, csv_rows(3, column="z"))
    before = await run_count(api)
    r = await api.post(f"/wf/{workflow_id}/start_batch_run/", json={"dataset_id": wrong_columns})
    assert r.status_code == 400
    assert r.json()["detail"] == "Input field 'x' in input schema not found in the dataset"
    r = await api.post(f"/wf/{workflow_id}/start_batch_run/", json={"dataset_id": str(uuid.uuid4())})
    assert (r.status_code, r.json()["detail"]) == (404, "Dataset not found")
    r = await api.post(f"/wf/{uuid.uuid4()}/start_batch_run/", json={"dataset_id": wrong_columns})
    assert (r.status_code, r.json()["detail"]) == (404, "Workflow not found")
    for bad in (
        {"dataset_id": wrong_columns, "mini_batch_size": 0},
        {"mini_batch_size": 2},
        {"dataset_id": 5},
    ):
        r = await api.post(f"/wf/{workflow_id}/start_batch_run/", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert await run_count(api) == before


async def test_batch_refuses_a_graph_with_a_human_step(api: httpx.AsyncClient) -> None:
    defn = definition(
        [input_node(), node("approve", "HumanInterventionNode"), output_node({"x": "approve.x"})],
        [link("input_node", "approve"), link("approve", "output_node")],
    )
    workflow_id = await make_workflow(api, defn)
    dataset_id = await make_dataset(api, csv_rows(2))
    r = await api.post(f"/wf/{workflow_id}/start_batch_run/", json={"dataset_id": dataset_id})
    assert r.status_code == 422
    assert "human step" in r.json()["detail"]


async def test_batch_reads_jsonl_rows_with_their_json_types(api: httpx.AsyncClient) -> None:
    rows = b"".join(json.dumps({"x": i, "note": "n"}).encode() + b"\n" for i in range(5))
    dataset_id = await make_dataset(api, rows, "rows.jsonl")
    workflow_id = await make_workflow(api, double_graph())
    parent = await start_batch(api, workflow_id, dataset_id)
    await reaches(api, parent["id"], "COMPLETED", within=60)
    lines = await output_lines(api, parent["output_file_id"])
    assert [line["py1"]["y"] for line in lines] == [0, 2, 4, 6, 8]
    assert lines[0]["input_node"] == {"x": 0}  # only the fields the InputNode declares


async def test_batch_runs_rows_through_python_and_loop_free_graph_with_two_python_nodes(
    api: httpx.AsyncClient,
) -> None:
    defn = definition(
        [
            input_node(),
            python_node("a", 'return {"y": input_model.input_node.x + 1}', {"y": "integer"}),
            python_node("b", 'return {"z": input_model.a.y * 10}', {"z": "integer"}),
            output_node({"z": "b.z"}),
        ],
        [link("input_node", "a"), link("a", "b"), link("b", "output_node")],
    )
    dataset_id = await make_dataset(api, csv_rows(6))
    workflow_id = await make_workflow(api, defn)
    parent = await start_batch(api, workflow_id, dataset_id, size=6)
    await reaches(api, parent["id"], "COMPLETED", within=60)
    lines = await output_lines(api, parent["output_file_id"])
    assert [line["output_node"]["z"] for line in lines] == [(i + 1) * 10 for i in range(6)]


async def test_batch_refuses_a_subworkflow_with_a_human_step(api: httpx.AsyncClient) -> None:
    waits = await make_workflow(
        api,
        definition(
            [input_node(), node("approve", "HumanInterventionNode"), output_node({"x": "approve.x"})],
            [link("input_node", "approve"), link("approve", "output_node")],
        ),
    )
    calls = definition(
        [input_node(), node("sub", "SubworkflowNode", workflow_id=waits), output_node({"x": "sub.x"})],
        [link("input_node", "sub"), link("sub", "output_node")],
    )
    workflow_id = await make_workflow(api, calls)
    dataset_id = await make_dataset(api, csv_rows(2))
    before = await run_count(api)
    r = await api.post(f"/wf/{workflow_id}/start_batch_run/", json={"dataset_id": dataset_id})
    assert r.status_code == 422
    assert "'approve'" in r.json()["detail"]
    assert await run_count(api) == before
