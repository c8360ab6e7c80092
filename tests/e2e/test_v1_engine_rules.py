"""Rules where the v1 API meets the shared engine: attempts, workflow-API runs, deletes with drafts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import ksapi
import pytest
from ksapi.exceptions import ConflictException
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.reconciler import cancel_stopped
from db import repo
from db.models import Run
from run_status import RunStatus
from tests.builders import definition, double_graph, input_node, link, node, output_node, python_node
from tests.conftest import Stack, Tenant, wait_until
from tests.e2e.v1_client import V1, new_definition, poll, raw, root_folder, set_graph, settled
from workflows.contracts import FinalizeInput, TaskRecord
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e


def test_a_run_of_the_workflow_api_is_not_retried_through_v1(v1: V1, live_api: str, tenant: Tenant) -> None:
    code = "raise ValueError('no')"
    with raw(live_api, tenant.key) as http:
        wf = http.post(
            "/wf/", json={"name": f"wfapi-{uuid.uuid4().hex[:6]}", "definition": double_graph(code)}
        )
        run = http.post(
            f"/wf/{wf.json()['id']}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}}
        )
        run_id = run.json()["id"]
        settled(v1, run_id, "FAILED")
        for call in (v1.runs.retry_workflow_run, v1.runs.resume_workflow_run):
            with pytest.raises(ConflictException) as caught:
                call(uuid.UUID(run_id))
            assert "workflow API" in str(caught.value.body)
        after = http.get(f"/run/{run_id}/").json()
        assert after["status"] == "FAILED" and [t["node_id"] for t in after["tasks"]][:2] == [
            "input_node",
            "py1",
        ]


def test_the_workflow_api_deletes_a_workflow_with_v1_drafts(v1: V1, live_api: str, tenant: Tenant) -> None:
    d = new_definition(v1, root_folder(v1))
    draft = v1.defs.create_workflow_run(d.id)
    with raw(live_api, tenant.key) as http:
        resp = http.delete(f"/wf/{d.id}/")
        assert resp.status_code in (200, 204), resp.text
        assert http.get(f"/wf/{d.id}/").status_code == 404
    with raw(live_api, tenant.key) as http:
        assert http.get(f"/v1/workflow-runs/{draft.id}").status_code == 404


async def test_writes_of_an_earlier_attempt_change_nothing(
    v1: V1, live_api: str, tenant: Tenant, db: async_sessionmaker[AsyncSession]
) -> None:
    with raw(live_api, tenant.key) as http:
        wf = http.post("/wf/", json={"name": f"att-{uuid.uuid4().hex[:6]}", "definition": double_graph()})
        run = http.post(
            f"/wf/{wf.json()['id']}/start_run/", json={"initial_inputs": {"input_node": {"x": 2}}}
        )
    run_id = uuid.UUID(run.json()["id"])
    settled(v1, run_id, "COMPLETED")
    async with db() as session, session.begin():
        # As after a retry: the run is back to PENDING for its second attempt.
        await session.execute(
            update(Run).where(Run.id == run_id).values(status="PENDING", end_time=None, attempt=2)
        )
    now = datetime.now(UTC)
    late = [TaskRecord(node_id="py1", seq=1, status="RUNNING", start_time=now)]
    async with db() as session, session.begin():
        await repo.record_progress(session, run_id, late, attempt=1)
        recorded, _ = await repo.finalize(
            session,
            FinalizeInput(
                run_id=str(run_id), attempt=1, status=RunStatus.CANCELED, outputs={}, tasks=late, end_time=now
            ),
        )
    assert not recorded
    async with db() as session:
        status = await session.scalar(select(Run.status).where(Run.id == run_id))
    assert status == "PENDING"  # neither the progress nor the terminal write of attempt 1 landed
    async with db() as session, session.begin():
        recorded, _ = await repo.finalize(
            session,
            FinalizeInput(
                run_id=str(run_id), attempt=2, status=RunStatus.FAILED, outputs={}, tasks=[], end_time=now
            ),
        )
    assert recorded


async def test_a_stop_whose_cancel_never_arrived_is_delivered_by_the_reconciler(
    v1: V1, live_api: str, tenant: Tenant, stack: Stack, db: async_sessionmaker[AsyncSession]
) -> None:
    slow = "import time\ntime.sleep(30)\nreturn {'y': 1}"
    with raw(live_api, tenant.key) as http:
        wf = http.post(
            "/wf/", json={"name": f"stop-{uuid.uuid4().hex[:6]}", "definition": double_graph(slow)}
        )
        run = http.post(
            f"/wf/{wf.json()['id']}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}}
        )
    run_id = uuid.UUID(run.json()["id"])
    settled(v1, run_id, "IN_PROGRESS")
    async with db() as session, session.begin():  # stopped in the database; the cancel was lost
        await repo.stop(session, run_id, "Stopped by user", cause="test")
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    handle = client.get_workflow_handle(temporal_workflow_id(str(run_id)))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await cancel_stopped(db, client)  # (the workers' reconcilers run it too, every second here)

    async def closed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    await wait_until(closed, within=30)
    async with db() as session:
        assert await session.scalar(select(Run.error).where(Run.id == run_id)) == "Stopped by user"


async def test_the_reconciler_leaves_alone_an_execution_started_after_the_stop(
    v1: V1, live_api: str, tenant: Tenant, stack: Stack, db: async_sessionmaker[AsyncSession]
) -> None:
    """A stopped run retried between the reconciler's read and its cancel: the running execution is
    the retry's (it started after the stop), not the one the stop was meant for (the chaos soak saw
    a retried run end CANCELED so)."""
    slow = "import time\ntime.sleep(30)\nreturn {'y': 1}"
    with raw(live_api, tenant.key) as http:
        wf = http.post(
            "/wf/", json={"name": f"stop-{uuid.uuid4().hex[:6]}", "definition": double_graph(slow)}
        )
        run = http.post(
            f"/wf/{wf.json()['id']}/start_run/", json={"initial_inputs": {"input_node": {"x": 1}}}
        )
    run_id = uuid.UUID(run.json()["id"])
    settled(v1, run_id, "IN_PROGRESS")
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    handle = client.get_workflow_handle(temporal_workflow_id(str(run_id)))
    started = (await handle.describe()).start_time
    async with db() as session, session.begin():  # as the reconciler read it: stopped before this execution
        await repo.stop(session, run_id, "Stopped by user", cause="test")
        await session.execute(
            update(Run).where(Run.id == run_id).values(end_time=started - timedelta(seconds=5))
        )
    try:
        await cancel_stopped(db, client)
        history = await handle.fetch_history()
        kinds = {e.event_type for e in history.events}
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in kinds
    finally:
        await handle.terminate()


def test_a_retry_runs_the_subworkflow_versions_its_first_attempt_pinned(
    v1: V1, live_api: str, tenant: Tenant
) -> None:
    def child_graph(tag: str) -> dict[str, Any]:
        return definition(
            [
                input_node({"text": "string"}),
                python_node("tag", f"return {{'tag': '{tag}'}}", {"tag": "string"}),
                output_node({"tag": "tag.tag"}),
            ],
            [link("input_node", "tag"), link("tag", "output_node")],
        )

    with raw(live_api, tenant.key) as http:
        child = http.post(
            "/wf/", json={"name": f"pin-{uuid.uuid4().hex[:6]}", "definition": child_graph("v1")}
        )
        child_id = child.json()["id"]
        fields = {"user_message": "string", "instruction": "string", "inputs": "array"}
        parent_graph = definition(
            [
                input_node(fields),
                node(
                    "sub",
                    "SubworkflowNode",
                    workflow_id=child_id,
                    input_map={"text": "input_node.user_message"},
                ),
                python_node("slow", "import time\ntime.sleep(30)\nreturn {'y': 1}", {"y": "integer"}),
                output_node({"tag": "sub.tag"}),
            ],
            [link("input_node", "sub"), link("sub", "slow"), link("slow", "output_node")],
        )
        d = new_definition(v1, root_folder(v1))
        set_graph(live_api, tenant.key, d.id, parent_graph)
        run = v1.defs.create_workflow_run(d.id, user_message="hi")

        def children() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = http.get(f"/run/{run.id}/children/").json()
            return found

        for attempt in (1, 2):
            if attempt == 1:
                v1.runs.start_workflow_run(run.id)
            else:
                v1.runs.retry_workflow_run(run.id)

            def done(found: list[dict[str, Any]], n: int = attempt) -> bool:
                return sum(1 for c in found if c["status"] == "COMPLETED") == n

            poll(children, done, within=30)
            v1.runs.stop_workflow_run(run.id)
            if attempt == 1:  # the child changes between the attempts
                wf = http.get(f"/wf/{child_id}/").json()
                edited = {"name": wf["name"], "description": "", "definition": child_graph("v2")}
                assert http.put(f"/wf/{child_id}/", json=edited).status_code == 200
        runs = children()
        assert [c["outputs"]["output_node"]["tag"] for c in runs] == ["v1", "v1"]
        assert len({c["workflow_version_id"] for c in runs}) == 1


async def test_runs_that_never_started_sort_last_by_start_time(
    v1: V1, db: async_sessionmaker[AsyncSession]
) -> None:
    d = new_definition(v1, root_folder(v1))
    failed, started = (v1.defs.create_workflow_run(d.id) for _ in range(2))
    v1.runs.start_workflow_run(started.id)
    settled(v1, started.id, "COMPLETED")
    async with db() as session, session.begin():  # as when an armed draft's upload fails ingestion
        assert await repo.fail_draft(session, failed.id, "Input 'a.txt' failed ingestion: bad")
    assert v1.runs.get_workflow_run(failed.id).started_at is None
    for direction in (ksapi.SortDirection.ASC, ksapi.SortDirection.DESC):
        page = v1.runs.list_workflow_runs_for_tenant(
            definition_id=d.id, sort_by=ksapi.WorkflowRunOrder.STARTED_AT, sort_dir=direction
        )
        assert [r.id for r in page.items] == [started.id, failed.id]
