"""v1 durability: stop while the worker is away, callbacks racing completion, the maximum run duration's bound."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import ksapi
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.reconciler import reconcile_once
from db.session import make_engine, make_session_factory
from tests.conftest import Stack, Tenant
from tests.e2e.v1_client import (
    SLEEP,
    V1,
    connect,
    new_definition,
    poll,
    raw,
    root_folder,
    set_graph,
    settled,
    v1_graph,
)
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e


def temporal_status(stack: Stack, run_id: Any) -> WorkflowExecutionStatus | None:
    async def describe() -> WorkflowExecutionStatus | None:
        client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
        return (await client.get_workflow_handle(temporal_workflow_id(str(run_id))).describe()).status

    return asyncio.run(describe())


def test_run_stopped_while_the_worker_is_down_stays_stopped_when_it_returns(
    v1: V1, live_api: str, tenant: Tenant, stack: Stack
) -> None:
    d = new_definition(v1, root_folder(v1))
    set_graph(live_api, tenant.key, d.id, v1_graph(SLEEP.format(secs=20)))
    run = v1.defs.create_workflow_run(d.id)
    v1.runs.start_workflow_run(run.id)
    with raw(live_api, tenant.key) as http:
        poll(
            lambda: http.get(f"/run/{run.id}/tasks/").json(),
            lambda tasks: any(t["node_id"] == "py1" and t["status"] == "RUNNING" for t in tasks),
        )
    stack.kill_workers()
    try:
        stopped = v1.runs.stop_workflow_run(run.id)
        assert stopped.execution_state.value == "FAILED" and stopped.error == "Stopped by user"
    finally:
        stack.start_worker()
    poll(lambda: temporal_status(stack, run.id), lambda s: s == WorkflowExecutionStatus.CANCELED, within=60)
    after = v1.runs.get_workflow_run(run.id)
    assert after.execution_state.value == "FAILED" and after.error == "Stopped by user"
    assert after.completed_at == stopped.completed_at
    with raw(live_api, tenant.key) as http:
        tasks = {t["node_id"]: t["status"] for t in http.get(f"/run/{run.id}/tasks/").json()}
    assert tasks["py1"] == "CANCELED"


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.3, 0.45])
def test_callback_racing_the_runs_own_completion_leaves_one_terminal_state(
    v1: V1, live_api: str, tenant: Tenant, stack: Stack, delay: float
) -> None:
    d = new_definition(v1, root_folder(v1))
    set_graph(live_api, tenant.key, d.id, v1_graph(SLEEP.format(secs=0.3)))
    run = v1.defs.create_workflow_run(d.id)
    answers: list[str] = []

    def callback() -> None:
        time.sleep(delay)
        cb = connect(live_api, tenant.key)
        answers.append(
            cb.runs.workflow_run_callback(
                run.id, ksapi.WorkflowRunCallbackRequest(status="FAILED", error="runner")
            ).status
        )

    v1.runs.start_workflow_run(run.id)
    racer = threading.Thread(target=callback)
    racer.start()
    racer.join()
    final = poll(
        lambda: v1.runs.get_workflow_run(run.id), lambda r: r.execution_state.value in ("COMPLETED", "FAILED")
    )
    closed = poll(
        lambda: temporal_status(stack, run.id), lambda s: s != WorkflowExecutionStatus.RUNNING, within=30
    )
    time.sleep(0.5)
    again = v1.runs.get_workflow_run(run.id)
    assert (again.execution_state, again.error, again.completed_at) == (
        final.execution_state,
        final.error,
        final.completed_at,
    )
    if final.execution_state.value == "COMPLETED":
        assert answers == ["already_terminal"]
        assert closed == WorkflowExecutionStatus.COMPLETED
    else:
        assert answers == ["accepted"] and final.error == "runner"
        assert closed == WorkflowExecutionStatus.FAILED
    late = v1.runs.workflow_run_callback(run.id, ksapi.WorkflowRunCallbackRequest(status="COMPLETED"))
    assert late.status == "already_terminal"


def execution_timeout(stack: Stack, run_id: Any) -> timedelta | None:
    async def describe() -> timedelta | None:
        client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
        desc = await client.get_workflow_handle(temporal_workflow_id(str(run_id))).describe()
        return desc.raw_description.execution_config.workflow_execution_timeout.ToTimedelta()

    return asyncio.run(describe())


def test_max_run_duration_bounds_the_execution_and_is_pinned_in_the_snapshot(
    v1: V1, live_api: str, tenant: Tenant, stack: Stack
) -> None:
    # What happens when the bound is reached (Temporal times the execution out, the reconciler fails
    # the run with "Run exceeded its maximum duration ...") is tests/db/test_reconciler.py's.
    d = new_definition(v1, root_folder(v1), max_run_duration_seconds=60)
    set_graph(live_api, tenant.key, d.id, v1_graph())
    run = v1.defs.create_workflow_run(d.id, name=f"bounded-{uuid.uuid4().hex[:6]}")
    v1.runs.start_workflow_run(run.id)
    done = settled(v1, run.id, "COMPLETED")
    assert done.run_snapshot.max_run_duration_seconds == 60
    assert execution_timeout(stack, run.id) == timedelta(seconds=60)


async def test_reconciler_leaves_drafts_alone(api: httpx.AsyncClient, stack: Stack) -> None:
    """A draft has no Temporal execution yet; the reconciler must not take it for a lost run."""
    root = (await api.get("/v1/folders")).json()["items"][0]["path_part_id"]
    d = await api.post(
        "/v1/workflow-definitions",
        json={"name": f"r-{uuid.uuid4().hex[:6]}", "parent_path_part_id": root, "approval_required": False},
    )
    run = (await api.post(f"/v1/workflow-definitions/{d.json()['id']}/runs")).json()
    engine = make_engine(stack.database_url, pool_size=1)
    try:
        client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
        await reconcile_once(make_session_factory(engine), client, grace=timedelta(0))
    finally:
        await engine.dispose()
    after = (await api.get(f"/v1/workflow-runs/{run['id']}")).json()
    assert after["execution_state"] == "NOT_STARTED" and after["error"] is None
