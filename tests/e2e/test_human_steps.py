"""Human approval steps and cancellation, through HTTP against real Temporal and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.builders import definition, input_node, link, node, output_node, python_node
from tests.conftest import Stack, Tenant, add_user, api_process, free_port, reaches, wait_until
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e


def human(node_id: str = "approve", **config: Any) -> dict[str, Any]:
    return node(node_id, "HumanInterventionNode", message=config.pop("message", f"Check {node_id}"), **config)


def gated(**human_config: Any) -> dict[str, Any]:
    """input -> approve (human) -> after (python) -> output; plus an independent side branch."""
    return definition(
        [
            input_node(),
            human(**human_config),
            python_node("after", "return {'seen': input_model.approve}", {}),
            python_node("side", "return {'s': input_model.input_node.x + 1}", {"s": "integer"}),
            output_node({"seen": "after.seen"}),
        ],
        [
            link("input_node", "approve"),
            link("approve", "after"),
            link("after", "output_node"),
            link("input_node", "side"),
        ],
    )


async def start(api: httpx.AsyncClient, defn: dict[str, Any], x: int = 1) -> tuple[str, dict[str, Any]]:
    """Create the workflow and run it blocking: returns (run id, the outputs so far)."""
    wf = (await api.post("/wf/", json={"name": f"h-{uuid.uuid4().hex[:6]}", "definition": defn})).json()["id"]
    resp = await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": x}}})
    assert resp.status_code == 200, resp.text
    run_id = (await api.get(f"/wf/{wf}/runs/")).json()[0]["id"]
    return run_id, resp.json()


async def run(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get(f"/run/{run_id}/")).json()
    return body


def decision(action: str = "APPROVE", **extra: Any) -> dict[str, Any]:
    return {
        "inputs": extra.pop("inputs", {}),
        "user_id": extra.pop("user_id", "alice"),
        "action": action,
        **extra,
    }


def tasks_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["node_id"]: t for t in body["tasks"]}


async def test_pause_blocks_only_its_downstream_and_is_listed(api: httpx.AsyncClient) -> None:
    run_id, outputs = await start(api, gated())
    assert outputs["side"] == {"s": 2}  # the independent branch finished
    assert outputs["approve"] == {"input_node": {"x": 1}}  # the pause shows its pass-through input
    assert "after" not in outputs
    body = await run(api, run_id)
    assert body["status"] == "PAUSED"
    tasks = tasks_of(body)
    assert tasks["approve"]["status"] == "PAUSED"
    assert tasks["after"]["status"] == "PENDING"
    assert tasks["side"]["status"] == "COMPLETED"
    listed = (await api.get("/wf/paused_workflows/", params={"page_size": 100})).json()
    mine = next(p for p in listed if p["run"]["id"] == run_id)
    assert mine["current_pause"]["node_id"] == "approve"
    assert mine["current_pause"]["pause_message"] == "Check approve"
    assert mine["current_pause"]["resume_action"] is None
    assert [n["id"] for n in mine["workflow"]["nodes"]][:2] == ["input_node", "approve"]
    history = (await api.get(f"/wf/pause_history/{run_id}/")).json()
    assert len(history) == 1 and history[0]["input_data"] == {"input_node": {"x": 1}}


async def test_approve_resumes_with_passthrough_merged_with_inputs_and_is_recorded(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    run_id, _ = await start(api, gated())
    resp = await api.post(
        f"/wf/process_pause_action/{run_id}/",
        json=decision("APPROVE", inputs={"note": "ok"}, comments="looks fine"),
    )
    assert resp.status_code == 200, resp.text
    body = await reaches(api, run_id, "COMPLETED")
    assert body["outputs"]["output_node"] == {"seen": {"input_node": {"x": 1}, "note": "ok"}}
    (entry,) = (await api.get(f"/wf/pause_history/{run_id}/")).json()
    assert entry["resume_action"] == "APPROVE"
    assert entry["resume_user_id"] == "alice"
    assert entry["decided_by"] == str(tenant.user_id)  # who really sent it, whatever the body says
    assert entry["comments"] == "looks fine"
    assert entry["resume_time"] >= entry["pause_time"]
    listed = (await api.get("/wf/paused_workflows/", params={"page_size": 100})).json()
    assert run_id not in {p["run"]["id"] for p in listed}


async def test_override_replaces_the_output_with_the_request_inputs(api: httpx.AsyncClient) -> None:
    run_id, _ = await start(api, gated())
    await api.post(f"/wf/process_pause_action/{run_id}/", json=decision("OVERRIDE", inputs={"v": 7}))
    body = await reaches(api, run_id, "COMPLETED")
    assert body["outputs"]["output_node"] == {"seen": {"v": 7}}


async def test_decline_cancels_downstream_nodes_and_ends_the_run_canceled(api: httpx.AsyncClient) -> None:
    run_id, _ = await start(api, gated())
    resp = await api.post(f"/wf/process_pause_action/{run_id}/", json=decision("DECLINE", comments="no"))
    assert resp.status_code == 200
    body = await reaches(api, run_id, "CANCELED")
    tasks = tasks_of(body)
    assert tasks["approve"]["status"] == "CANCELED"
    assert tasks["after"]["status"] == "CANCELED"
    assert tasks["side"]["status"] == "COMPLETED"
    assert "Declined by alice: no" in (body["error"] or "")
    (entry,) = (await api.get(f"/wf/pause_history/{run_id}/")).json()
    assert entry["resume_action"] == "DECLINE"


async def test_parallel_pauses_are_each_answered_on_their_own(api: httpx.AsyncClient) -> None:
    defn = definition(
        [
            input_node(),
            human("a"),
            human("b"),
            node("m", "MergeNode"),
        ],
        [link("input_node", "a"), link("input_node", "b"), link("a", "m"), link("b", "m")],
    )
    run_id, _ = await start(api, defn)

    async def both_open() -> bool:
        # The run is PAUSED from its first pause on; the second pause's row follows within moments.
        history = (await api.get(f"/wf/pause_history/{run_id}/")).json()
        return {h["node_id"] for h in history} == {"a", "b"}

    await wait_until(both_open, within=30)
    await api.post(
        f"/wf/process_pause_action/{run_id}/", json=decision("OVERRIDE", inputs={"from": "a"}, node_id="a")
    )
    assert (await run(api, run_id))["status"] == "PAUSED"
    await api.post(
        f"/wf/process_pause_action/{run_id}/", json=decision("OVERRIDE", inputs={"from": "b"}, node_id="b")
    )
    body = await reaches(api, run_id, "COMPLETED")
    assert body["outputs"]["m"] == {"a": {"from": "a"}, "b": {"from": "b"}}


async def test_the_same_approval_sent_twice_runs_the_downstream_once(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    run_id, _ = await start(api, gated())
    req = decision("APPROVE", inputs={"k": 1})
    first, second = await asyncio.gather(
        api.post(f"/wf/process_pause_action/{run_id}/", json=req),
        api.post(f"/wf/process_pause_action/{run_id}/", json=req),
    )
    assert (first.status_code, second.status_code) == (200, 200)
    await reaches(api, run_id, "COMPLETED")
    again = await api.post(f"/wf/process_pause_action/{run_id}/", json=req)
    assert again.status_code == 200
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    history = await client.get_workflow_handle(temporal_workflow_id(run_id)).fetch_history()
    conv = pydantic_data_converter.payload_converter
    summaries = [
        conv.from_payload(e.user_metadata.summary, str)
        for e in history.events
        if e.HasField("user_metadata") and e.user_metadata.HasField("summary")
    ]
    assert summaries.count("after") == 1


async def test_racing_approve_and_decline_have_one_winner(api: httpx.AsyncClient) -> None:
    run_id, _ = await start(api, gated())
    approve, decline = await asyncio.gather(
        api.post(f"/wf/process_pause_action/{run_id}/", json=decision("APPROVE", user_id="ann")),
        api.post(f"/wf/process_pause_action/{run_id}/", json=decision("DECLINE", user_id="bob")),
    )
    codes = sorted([approve.status_code, decline.status_code])
    assert codes == [200, 409], (approve.text, decline.text)
    winner = "APPROVE" if approve.status_code == 200 else "DECLINE"
    final = await reaches(api, run_id, "COMPLETED" if winner == "APPROVE" else "CANCELED")
    (entry,) = (await api.get(f"/wf/pause_history/{run_id}/")).json()
    assert entry["resume_action"] == winner
    assert final["status"] in ("COMPLETED", "CANCELED")


async def test_decisions_on_runs_or_nodes_that_are_not_paused_are_refused(api: httpx.AsyncClient) -> None:
    run_id, _ = await start(api, gated())
    assert (
        await api.post(f"/wf/process_pause_action/{run_id}/", json=decision(node_id="side"))
    ).status_code == 400
    assert (await api.post(f"/wf/process_pause_action/{uuid.uuid4()}/", json=decision())).status_code == 404
    assert (
        await api.post(f"/wf/process_pause_action/{run_id}/", json=decision("approve"))
    ).status_code == 422
    assert (
        await api.post(f"/wf/process_pause_action/{run_id}/", json=decision("APPROVE"))
    ).status_code == 200
    await reaches(api, run_id, "COMPLETED")
    late = await api.post(f"/wf/process_pause_action/{run_id}/", json=decision("DECLINE"))
    assert late.status_code == 409
    plain, _ = await start(
        api,
        definition([input_node(), output_node({"x": "input_node.x"})], [link("input_node", "output_node")]),
    )
    not_paused = await api.post(f"/wf/process_pause_action/{plain}/", json=decision())
    assert not_paused.status_code == 400
    assert not_paused.json()["detail"] == "Run is not in a paused state"


async def test_a_timed_out_pause_shows_the_timeout_as_its_decider(api: httpx.AsyncClient) -> None:
    # Every on_timeout action (approve, decline, fail) is tests/engine/test_human_steps.py's, on a
    # time-skipping server; this one checks what the API shows of a timed-out pause.
    run_id, _ = await start(api, gated(timeout_seconds=1, on_timeout="approve"))
    await reaches(api, run_id, "COMPLETED")
    (entry,) = (await api.get(f"/wf/pause_history/{run_id}/")).json()
    assert entry["resume_time"] is not None
    assert (entry["resume_action"], entry["resume_user_id"]) == ("APPROVE", "timeout")


async def test_cancel_during_a_running_python_node_stops_it(api: httpx.AsyncClient) -> None:
    defn = definition(
        [input_node(), python_node("busy", "import time\ntime.sleep(30)\nreturn {}", {})],
        [link("input_node", "busy")],
    )
    wf = (await api.post("/wf/", json={"name": f"c-{uuid.uuid4().hex[:6]}", "definition": defn})).json()["id"]
    run_id = (
        await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    ).json()["id"]
    await reaches(api, run_id, "RUNNING")
    resp = await api.post(f"/wf/cancel_workflow/{run_id}/")
    assert resp.status_code == 200, resp.text
    assert resp.json()["message"] == "Workflow has been canceled successfully."
    body = await reaches(api, run_id, "CANCELED", within=5)
    assert tasks_of(body)["busy"]["status"] == "CANCELED"
    again = await api.post(f"/wf/cancel_workflow/{run_id}/")
    assert again.status_code == 400
    assert again.json()["detail"] == (
        "Run is in state RunStatus.CANCELED and cannot be canceled.Only PAUSED or RUNNING runs can be canceled."
    )


async def test_pause_survives_restarting_temporal_the_worker_and_the_api(
    stack: Stack, tenant: Tenant
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with api_process(stack, port):
        async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=60) as client:
            run_id, _ = await start(client, gated())
    stack.kill_workers()
    stack.kill_temporal()
    stack.start_temporal()
    stack.start_worker()
    with api_process(stack, port):
        async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=60) as client:
            listed = (await client.get("/wf/paused_workflows/", params={"page_size": 100})).json()
            assert run_id in {p["run"]["id"] for p in listed}
            resp = await client.post(f"/wf/process_pause_action/{run_id}/", json=decision("APPROVE"))
            assert resp.status_code == 200, resp.text
            body = await reaches(client, run_id, "COMPLETED", within=60)
            assert body["outputs"]["output_node"] == {"seen": {"input_node": {"x": 1}}}


async def test_only_the_triggering_user_or_an_admin_may_decide_or_cancel(
    api: httpx.AsyncClient, stack: Stack, tenant: Tenant
) -> None:
    colleague = await add_user(stack.database_url, tenant, "USER")
    admin = await add_user(stack.database_url, tenant, "ADMIN")
    run_id, _ = await start(api, gated())  # started by the tenant's OWNER
    refused = await api.post(
        f"/wf/process_pause_action/{run_id}/", json=decision(), headers=colleague.headers
    )
    assert refused.status_code == 403
    assert (await api.post(f"/wf/cancel_workflow/{run_id}/", headers=colleague.headers)).status_code == 403
    assert (await run(api, run_id))["status"] == "PAUSED"  # nothing changed
    ok = await api.post(f"/wf/process_pause_action/{run_id}/", json=decision(), headers=admin.headers)
    assert ok.status_code == 200


async def test_cancel_racing_the_last_node_leaves_one_terminal_state_that_temporal_agrees_with(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    defn = definition(
        [
            input_node(),
            python_node("quick", "import time\ntime.sleep(0.3)\nreturn {'q': 1}", {"q": "integer"}),
        ],
        [link("input_node", "quick")],
    )
    wf = (await api.post("/wf/", json={"name": f"race-{uuid.uuid4().hex[:6]}", "definition": defn})).json()[
        "id"
    ]
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    expected = {"COMPLETED": "COMPLETED", "CANCELED": "CANCELED"}
    for delay in (0.2, 0.28, 0.32, 0.4):
        run_id = (
            await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}})
        ).json()["id"]
        await asyncio.sleep(delay)
        resp = await api.post(f"/wf/cancel_workflow/{run_id}/")
        assert resp.status_code in (200, 400)

        handle = client.get_workflow_handle(temporal_workflow_id(run_id))

        async def closed(handle: Any = handle) -> Any:
            # The terminal write precedes the close of the execution by a moment.
            desc = await handle.describe()
            return desc.status if desc.status and desc.status.name != "RUNNING" else None

        temporal_status = await wait_until(closed)
        body = await run(api, run_id)
        assert body["status"] in ("COMPLETED", "CANCELED")
        assert temporal_status.name == expected[body["status"]]
        states = {t["status"] for t in body["tasks"]}
        assert "RUNNING" not in states and "PENDING" not in states


async def test_human_config_values_are_read_as_their_types(api: httpx.AsyncClient) -> None:
    # Stored as the client sent them ("1", "false"); the run must treat them as 1 and False.
    run_id, _ = await start(
        api, gated(timeout_seconds="1", on_timeout="decline", continue_on_decline="false")
    )
    body = await reaches(api, run_id, "CANCELED")
    assert tasks_of(body)["after"]["status"] == "CANCELED"


async def test_deleting_a_workflow_with_an_unfinished_run_is_refused(api: httpx.AsyncClient) -> None:
    wf = (await api.post("/wf/", json={"name": f"d-{uuid.uuid4().hex[:6]}", "definition": gated()})).json()[
        "id"
    ]
    await api.post(f"/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"x": 1}}})
    run_id = (await api.get(f"/wf/{wf}/runs/")).json()[0]["id"]
    assert (await api.delete(f"/wf/{wf}/")).status_code == 409
    assert (await run(api, run_id))["status"] == "PAUSED"
    await api.post(f"/wf/cancel_workflow/{run_id}/")
    assert (await api.delete(f"/wf/{wf}/")).status_code == 204
