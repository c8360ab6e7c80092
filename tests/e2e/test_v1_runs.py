"""The v1 workflow-runs API driven by the unmodified ksapi 3.18.2 client against the real stack."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import ksapi
import pytest
from ksapi.exceptions import (
    BadRequestException,
    ConflictException,
    ForbiddenException,
    NotFoundException,
    UnauthorizedException,
    UnprocessableEntityException,
)

from tests.conftest import Tenant
from tests.e2e.v1_client import (
    SLEEP,
    V1,
    connect,
    new_definition,
    poll,
    raw,
    set_graph,
    settled,
    v1_graph,
)

pytestmark = pytest.mark.e2e


def headers(raw_headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in (raw_headers or {}).items()}


def definition_with(
    v1: V1, root: uuid.UUID, live_api: str, key: str, graph: dict[str, Any], **extra: Any
) -> Any:
    d = new_definition(v1, root, **extra)
    set_graph(live_api, key, d.id, graph)
    return d


def in_progress_run(v1: V1, d: Any, secs: float = 30) -> Any:
    run = v1.defs.create_workflow_run(d.id)
    v1.runs.start_workflow_run(run.id)
    return run


# -- create, start, get ---------------------------------------------------------------------------------


def test_default_graph_run_goes_from_draft_to_completed(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    assert run.execution_state.value == "NOT_STARTED"
    assert run.started_at is None and run.run_snapshot is None
    assert run.workflow_definition_id == d.id and run.name == str(run.id)
    started = v1.runs.start_workflow_run_with_http_info(run.id)
    assert started.status_code == 202
    assert headers(started.headers)["location"] == f"/v1/workflow-runs/{run.id}"
    assert started.data.execution_state.value in ("IN_PROGRESS", "COMPLETED")
    done = settled(v1, run.id, "COMPLETED")
    assert done.completed_at is not None and done.started_at is not None
    assert done.run_snapshot.workflow_name == d.name
    assert done.run_snapshot.max_run_duration_seconds == 1800
    assert done.run_snapshot.instruction.part_type == "DOCUMENT_VERSION"
    assert done.approval_state.value == "not_required"
    assert done.permissions.can_write is True


def test_start_is_idempotent_in_progress_and_conflicts_once_terminal(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with(v1, root, live_api, tenant.key, v1_graph(SLEEP.format(secs=2)))
    run = in_progress_run(v1, d)
    again = v1.runs.start_workflow_run_with_http_info(run.id)
    assert again.status_code == 202 and again.data.execution_state.value == "IN_PROGRESS"
    settled(v1, run.id, "COMPLETED")
    with pytest.raises(ConflictException):
        v1.runs.start_workflow_run(run.id)


def test_completed_run_stores_outputs_as_documents_and_awaits_approval(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant, member: Tenant
) -> None:
    d = definition_with(v1, root, live_api, tenant.key, v1_graph(), approval_required=True)
    run = v1.defs.create_workflow_run(d.id, user_message="hello there")
    v1.runs.start_workflow_run(run.id, ksapi.StartWorkflowRunRequest(user_message="pinned"))
    done = settled(v1, run.id, "COMPLETED")
    assert done.run_snapshot.user_message == "pinned"
    assert done.approval_state.value == "pending"
    [asset] = done.outputs.assets
    assert asset.name == "output_node.json" and asset.approval_state.value == "pending"
    with raw(live_api, tenant.key) as http:
        body = http.get(f"/run/{run.id}/").json()
    assert body["outputs"]["output_node"]["message"] == "pinned"
    worklist = v1.runs.list_workflow_runs_for_tenant(
        approval_state=[ksapi.PathPartApprovalState.PENDING], approvable_by_me=True
    )
    assert run.id in [r.id for r in worklist.items]
    summary = v1.runs.get_workflow_runs_summary(definition_id=d.id)
    assert summary.pending_approval_count == 1
    with pytest.raises(ForbiddenException):
        connect(live_api, member.key).runs.set_workflow_run_approval(
            run.id, ksapi.SetWorkflowRunApprovalRequest(state="approved")
        )
    approved = v1.runs.set_workflow_run_approval(
        run.id, ksapi.SetWorkflowRunApprovalRequest(state="approved", reason="ok")
    )
    assert approved.approval_state.value == "approved"
    assert [a.approval_state.value for a in approved.outputs.assets or []] == ["approved"]
    again = v1.runs.set_workflow_run_approval(run.id, ksapi.SetWorkflowRunApprovalRequest(state="approved"))
    assert again.approval_state.value == "approved"
    pending_now = v1.runs.list_workflow_runs_for_tenant(
        approval_state=[ksapi.PathPartApprovalState.PENDING], approvable_by_me=True, definition_id=d.id
    )
    assert pending_now.total == 0
    approvable = v1.runs.list_workflow_runs_for_tenant(approvable_by_me=True, definition_id=d.id)
    assert [r.id for r in approvable.items] == [run.id]
    assert connect(live_api, member.key).runs.list_workflow_runs_for_tenant(approvable_by_me=True).total == 0


def test_approval_needs_a_completed_run_of_a_definition_that_requires_it(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    with pytest.raises(ConflictException):
        v1.runs.set_workflow_run_approval(run.id, ksapi.SetWorkflowRunApprovalRequest(state="approved"))
    v1.runs.start_workflow_run(run.id)
    settled(v1, run.id, "COMPLETED")
    with pytest.raises(ConflictException):
        v1.runs.set_workflow_run_approval(run.id, ksapi.SetWorkflowRunApprovalRequest(state="approved"))


# -- stop, retry, resume, clone, callback -----------------------------------------------------------------


def test_stop_fails_the_run_as_stopped_by_user_and_is_idempotent(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with(v1, root, live_api, tenant.key, v1_graph(SLEEP.format(secs=30)))
    draft = v1.defs.create_workflow_run(d.id)
    assert v1.runs.stop_workflow_run(draft.id).execution_state.value == "NOT_STARTED"
    run = in_progress_run(v1, d)
    stopped = v1.runs.stop_workflow_run(run.id)
    assert stopped.execution_state.value == "FAILED"
    assert stopped.error == "Stopped by user" and stopped.completed_at is not None
    again = v1.runs.stop_workflow_run(run.id)
    assert again.execution_state.value == "FAILED" and again.completed_at == stopped.completed_at
    with raw(live_api, tenant.key) as http:
        assert http.get(f"/run/{run.id}/").json()["status"] == "CANCELED"


def test_retry_reruns_a_stopped_run_from_scratch_against_its_snapshot(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with(v1, root, live_api, tenant.key, v1_graph(SLEEP.format(secs=1.5)))
    run = in_progress_run(v1, d)
    v1.runs.stop_workflow_run(run.id)
    # The graph changes after the start; the retry runs the pinned one.
    set_graph(live_api, tenant.key, d.id, v1_graph("raise ValueError('new graph')"))
    retried = v1.runs.retry_workflow_run_with_http_info(run.id)
    assert retried.status_code == 202
    assert retried.data.execution_state.value == "IN_PROGRESS" and retried.data.error is None
    done = settled(v1, run.id, "COMPLETED")
    with raw(live_api, tenant.key) as http:
        assert http.get(f"/run/{run.id}/").json()["outputs"]["output_node"] == {"y": 7}
    assert done.run_snapshot.workflow_name == d.name
    for op in (v1.runs.retry_workflow_run, v1.runs.resume_workflow_run):
        with pytest.raises(ConflictException):
            op(run.id)


def test_resume_reuses_the_outputs_of_nodes_that_completed(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    from tests.builders import definition, input_node, link, output_node, python_node

    fields = {"user_message": "string"}
    graph = definition(
        [
            input_node(fields),
            python_node("stamp", "import time\nreturn {'t': time.time()}", {"t": "number"}),
            python_node("slow", "import time\ntime.sleep(2)\nreturn {'y': 1}", {"y": "integer"}),
            output_node({"t": "stamp.t", "y": "slow.y"}),
        ],
        [
            link("input_node", "stamp"),
            link("input_node", "slow"),
            link("stamp", "output_node"),
            link("slow", "output_node"),
        ],
    )
    d = definition_with(v1, root, live_api, tenant.key, graph)
    run = in_progress_run(v1, d)
    with raw(live_api, tenant.key) as http:

        def stamp_done() -> list[dict[str, Any]]:
            tasks: list[dict[str, Any]] = http.get(f"/run/{run.id}/tasks/").json()
            return [t for t in tasks if t["node_id"] == "stamp" and t["status"] == "COMPLETED"]

        first = poll(stamp_done, bool)[0]["outputs"]["t"]
        v1.runs.stop_workflow_run(run.id)
        assert v1.runs.resume_workflow_run_with_http_info(run.id).status_code == 202
        settled(v1, run.id, "COMPLETED")
        outputs = http.get(f"/run/{run.id}/").json()["outputs"]
    assert outputs["output_node"] == {"t": first, "y": 1}


def test_retry_and_resume_are_only_for_failed_runs(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    for op in (v1.runs.retry_workflow_run, v1.runs.resume_workflow_run):
        with pytest.raises(ConflictException):
            op(run.id)


def test_clone_drafts_a_new_run_from_a_started_one_only(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    draft = v1.defs.create_workflow_run(d.id)
    with pytest.raises(ConflictException):
        v1.runs.clone_workflow_run(draft.id, ksapi.CloneWorkflowRunRequest(include_inputs=True))
    v1.runs.start_workflow_run(draft.id)
    settled(v1, draft.id, "COMPLETED")
    resp = v1.runs.clone_workflow_run_with_http_info(
        draft.id, ksapi.CloneWorkflowRunRequest(include_inputs=True)
    )
    assert resp.status_code == 201
    clone = resp.data
    assert clone.id != draft.id and clone.execution_state.value == "NOT_STARTED"
    assert clone.workflow_definition_id == d.id and clone.run_snapshot is None
    assert v1.runs.get_workflow_run(draft.id).execution_state.value == "COMPLETED"
    v1.runs.start_workflow_run(clone.id)
    settled(v1, clone.id, "COMPLETED")


def test_callback_writes_the_first_terminal_state_and_answers_already_terminal_after(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with(v1, root, live_api, tenant.key, v1_graph(SLEEP.format(secs=30)))
    draft = v1.defs.create_workflow_run(d.id)
    with pytest.raises(ConflictException):
        v1.runs.workflow_run_callback(draft.id, ksapi.WorkflowRunCallbackRequest(status="COMPLETED"))
    run = in_progress_run(v1, d)
    first = v1.runs.workflow_run_callback(
        run.id, ksapi.WorkflowRunCallbackRequest(status="FAILED", error="runner broke")
    )
    assert first.status != "already_terminal"
    later = v1.runs.workflow_run_callback(run.id, ksapi.WorkflowRunCallbackRequest(status="COMPLETED"))
    assert later.status == "already_terminal"
    got = v1.runs.get_workflow_run(run.id)
    assert got.execution_state.value == "FAILED" and got.error == "runner broke"


# -- PATCH, delete ------------------------------------------------------------------------------------------


def test_patch_edits_a_draft_and_arming_auto_start_dispatches_it(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id, name=f"n-{uuid.uuid4().hex[:6]}")
    renamed = v1.runs.update_workflow_run(
        run.id, ksapi.UpdateWorkflowRunRequest(name="renamed", user_message="note")
    )
    assert renamed.name == "renamed" and renamed.auto_start_user_message == "note"
    assert renamed.execution_state.value == "NOT_STARTED"
    other = v1.defs.create_workflow_run(d.id)
    with pytest.raises(ConflictException):
        v1.runs.update_workflow_run(other.id, ksapi.UpdateWorkflowRunRequest(name="renamed"))
    with pytest.raises(BadRequestException):
        v1.runs.update_workflow_run(run.id, ksapi.UpdateWorkflowRunRequest())
    armed = v1.runs.update_workflow_run(run.id, ksapi.UpdateWorkflowRunRequest(auto_start=True))
    assert armed.auto_start is True and armed.execution_state.value in ("IN_PROGRESS", "COMPLETED")
    done = settled(v1, run.id, "COMPLETED")
    assert done.run_snapshot.user_message == "note"
    with pytest.raises(ConflictException):
        v1.runs.update_workflow_run(run.id, ksapi.UpdateWorkflowRunRequest(name="late"))


def test_mutations_are_for_the_triggerer_or_an_owner_or_admin(
    v1: V1, root: uuid.UUID, live_api: str, member: Tenant
) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    other = connect(live_api, member.key)
    theirs: Any = other.runs.get_workflow_run(run.id)
    assert theirs.permissions.can_write is False
    for call in (
        lambda: other.runs.update_workflow_run(run.id, ksapi.UpdateWorkflowRunRequest(name="x")),
        lambda: other.runs.start_workflow_run(run.id),
        lambda: other.runs.delete_workflow_run(run.id),
        lambda: other.runs.workflow_run_callback(run.id, ksapi.WorkflowRunCallbackRequest(status="FAILED")),
    ):
        with pytest.raises(ForbiddenException):
            call()
    assert v1.runs.get_workflow_run(run.id).execution_state.value == "NOT_STARTED"
    mine = other.defs.create_workflow_run(d.id)
    assert (
        other.runs.update_workflow_run(mine.id, ksapi.UpdateWorkflowRunRequest(name=f"m-{mine.id}")).name
        == f"m-{mine.id}"
    )
    assert (
        v1.runs.update_workflow_run(mine.id, ksapi.UpdateWorkflowRunRequest(auto_start=False)).auto_start
        is False
    )


def test_delete_refuses_a_run_in_progress_and_removes_others(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with(v1, root, live_api, tenant.key, v1_graph(SLEEP.format(secs=30)))
    run = in_progress_run(v1, d)
    with pytest.raises(ConflictException):
        v1.runs.delete_workflow_run(run.id)
    v1.runs.stop_workflow_run(run.id)
    assert v1.runs.delete_workflow_run_with_http_info(run.id).status_code == 204
    with pytest.raises(NotFoundException):
        v1.runs.get_workflow_run(run.id)
    draft = v1.defs.create_workflow_run(d.id)
    v1.runs.delete_workflow_run(draft.id)
    with pytest.raises(NotFoundException):
        v1.runs.get_workflow_run(draft.id)


# -- creation details -------------------------------------------------------------------------------------


def test_create_run_with_idempotency_key_returns_the_same_run_with_201(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    key = uuid.uuid4().hex
    first = v1.defs.create_workflow_run_with_http_info(d.id, idempotency_key=key, name=f"k-{key[:6]}")
    second = v1.defs.create_workflow_run_with_http_info(d.id, idempotency_key=key, name=f"k-{key[:6]}")
    assert first.status_code == second.status_code == 201
    assert first.data.id == second.data.id
    assert v1.defs.list_workflow_runs(d.id).total == 1


def test_create_run_refuses_a_taken_name_bad_input_scope_and_unknown_scope_ids_with_404(
    v1: V1, root: uuid.UUID
) -> None:
    d = new_definition(v1, root)
    v1.defs.create_workflow_run(d.id, name="same")
    with pytest.raises(ConflictException):
        v1.defs.create_workflow_run(d.id, name="same")
    with pytest.raises(UnprocessableEntityException):
        v1.defs.create_workflow_run(d.id, input_scope="not json")
    with pytest.raises(UnprocessableEntityException):
        v1.defs.create_workflow_run(d.id, input_scope='{"a": 1}')
    with pytest.raises(NotFoundException):
        v1.defs.create_workflow_run(d.id, input_scope=f'["{uuid.uuid4()}"]')
    assert v1.defs.list_workflow_runs(d.id).total == 1


def test_input_scope_pins_readable_documents_into_the_snapshot(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    folder = v1.folders.create_folder(
        ksapi.CreateFolderRequest(name=f"kb-{uuid.uuid4().hex[:6]}", parent_path_part_id=root)
    )
    run = v1.defs.create_workflow_run(d.id, input_scope=f'["{folder.path_part_id}"]')
    v1.runs.start_workflow_run(run.id)
    done = settled(v1, run.id, "COMPLETED")
    [pinned] = done.run_snapshot.inputs
    assert pinned.part_type == "FOLDER" and pinned.path_part_id == folder.path_part_id
    assert pinned.origin.value == "RUN_REFERENCE"


# -- lists, summary, tenancy, auth ---------------------------------------------------------------------


def test_tenant_list_filters_sorts_and_pages(v1: V1, root: uuid.UUID, live_api: str, member: Tenant) -> None:
    d = new_definition(v1, root)
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = [v1.defs.create_workflow_run(d.id).id for _ in range(3)]
    v1.runs.start_workflow_run(ids[0])
    settled(v1, ids[0], "COMPLETED")
    theirs = connect(live_api, member.key).defs.create_workflow_run(d.id)
    page = v1.runs.list_workflow_runs_for_tenant(
        definition_id=d.id,
        sort_by=ksapi.WorkflowRunOrder.CREATED_AT,
        sort_dir=ksapi.SortDirection.ASC,
        limit=2,
    )
    assert page.total == 4 and page.limit == 2 and page.offset == 0
    assert [r.id for r in page.items] == ids[:2]
    rest = v1.runs.list_workflow_runs_for_tenant(
        definition_id=d.id,
        sort_by=ksapi.WorkflowRunOrder.CREATED_AT,
        sort_dir=ksapi.SortDirection.ASC,
        limit=2,
        offset=2,
    )
    assert [r.id for r in rest.items] == [ids[2], theirs.id]
    drafts = v1.runs.list_workflow_runs_for_tenant(
        definition_id=d.id, state=[ksapi.WorkflowExecutionState.NOT_STARTED]
    )
    assert {r.id for r in drafts.items} == {ids[1], ids[2], theirs.id}
    done = v1.runs.list_workflow_runs_for_tenant(
        definition_id=d.id,
        state=[ksapi.WorkflowExecutionState.COMPLETED, ksapi.WorkflowExecutionState.FAILED],
    )
    assert [r.id for r in done.items] == [ids[0]]
    mine = v1.runs.list_workflow_runs_for_tenant(definition_id=d.id, mine=True)
    assert theirs.id not in {r.id for r in mine.items} and mine.total == 3
    by_owner = v1.runs.list_workflow_runs_for_tenant(definition_id=d.id, owner_id=member.user_id)
    assert [r.id for r in by_owner.items] == [theirs.id]
    newest_started = v1.runs.list_workflow_runs_for_tenant(definition_id=d.id)
    assert newest_started.items[0].id == ids[0]  # drafts have no start time: they sort last
    window = v1.runs.list_workflow_runs_for_tenant(
        definition_id=d.id, created_after=since, created_before=datetime.now(UTC) + timedelta(seconds=5)
    )
    assert window.total == 4
    assert (
        v1.runs.list_workflow_runs_for_tenant(
            definition_id=d.id, created_after=datetime.now(UTC) + timedelta(hours=1)
        ).total
        == 0
    )
    by_completion = v1.runs.list_workflow_runs_for_tenant(
        definition_id=d.id, sort_by=ksapi.WorkflowRunOrder.COMPLETED_AT
    )
    assert by_completion.items[0].id == ids[0]
    touched = v1.runs.list_workflow_runs_for_tenant(
        definition_id=d.id, updated_before=datetime.now(UTC) + timedelta(seconds=5), updated_after=since
    )
    assert touched.total == 4


def test_summary_counts_runs_by_execution_state(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    v1.runs.start_workflow_run(run.id)
    settled(v1, run.id, "COMPLETED")
    v1.defs.create_workflow_run(d.id)
    s = v1.runs.get_workflow_runs_summary(definition_id=d.id)
    assert s.total == 2
    assert s.counts_by_state == {
        "PENDING": 0,
        "NOT_STARTED": 1,
        "IN_PROGRESS": 0,
        "COMPLETED": 1,
        "FAILED": 0,
    }
    assert s.failure_rate == 0 and s.duration_p50_seconds is not None
    assert s.adoption.runs == 2 and s.adoption.distinct_triggerers == 1
    past = v1.runs.get_workflow_runs_summary(until=datetime.now(UTC) - timedelta(hours=1), definition_id=d.id)
    assert past.total == 0 and past.window_end is not None
    future = v1.runs.get_workflow_runs_summary(
        since=datetime.now(UTC) + timedelta(hours=1), definition_id=d.id
    )
    assert future.total == 0 and future.failure_rate is None


def test_summary_counts_active_definitions_leaving_out_inactive_ones_and_templates(
    v1: V1, root: uuid.UUID
) -> None:
    def active() -> int:
        return int(v1.runs.get_workflow_runs_summary().adoption.active_definitions)

    before = active()
    d = new_definition(v1, root)
    new_definition(v1, root, is_template=True)
    assert active() == before + 1
    v1.defs.update_workflow_definition(
        d.id,
        ksapi.UpdateWorkflowDefinitionRequest(
            name=d.name, is_active=False, approval_required=d.approval_required
        ),
    )
    assert active() == before


def test_nothing_of_another_tenant_is_visible(
    v1: V1, root: uuid.UUID, live_api: str, other_tenant: Tenant
) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    stranger = connect(live_api, other_tenant.key)
    for call in (
        lambda: stranger.runs.get_workflow_run(run.id),
        lambda: stranger.runs.start_workflow_run(run.id),
        lambda: stranger.runs.stop_workflow_run(run.id),
        lambda: stranger.defs.get_workflow_definition(d.id),
        lambda: stranger.defs.create_workflow_run(d.id),
    ):
        with pytest.raises(NotFoundException):
            call()
    assert run.id not in {r.id for r in stranger.runs.list_workflow_runs_for_tenant(limit=100).items}


def test_missing_or_invalid_credentials_are_401_and_the_bare_cookie_works(
    live_api: str, tenant: Tenant, v1: V1, root: uuid.UUID
) -> None:
    d = new_definition(v1, root)
    with pytest.raises(UnauthorizedException):
        connect(live_api, "ks_wrong").defs.create_workflow_run(d.id)
    anonymous = connect(live_api, "")
    anonymous.client.configuration.access_token = None
    with pytest.raises(UnauthorizedException):
        anonymous.runs.list_workflow_runs_for_tenant()
    by_cookie = connect(live_api, tenant.key, cookie=True)
    run = by_cookie.defs.create_workflow_run(d.id)
    assert by_cookie.runs.get_workflow_run(run.id).id == run.id


def test_unknown_run_is_not_found_with_the_error_envelope(v1: V1) -> None:
    with pytest.raises(NotFoundException) as caught:
        v1.runs.get_workflow_run(uuid.uuid4())
    err = caught.value
    assert headers(err.headers)["x-request-id"]
    body = json.loads(err.body or "")
    assert body["code"] == "not_found" and body["request_id"] == headers(err.headers)["x-request-id"]
    assert isinstance(body["detail"], str)


def test_run_paused_on_a_person_is_in_progress_and_can_be_stopped(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    from tests.builders import definition, input_node, link, node, output_node

    graph = definition(
        [
            input_node({"user_message": "string"}),
            node("approve", "HumanInterventionNode", message="Check it"),
            output_node({"m": "approve.user_message"}),
        ],
        [link("input_node", "approve"), link("approve", "output_node")],
    )
    d = definition_with(v1, root, live_api, tenant.key, graph)
    run = in_progress_run(v1, d)
    with raw(live_api, tenant.key) as http:
        poll(lambda: http.get(f"/run/{run.id}/").json()["status"], lambda s: s == "PAUSED")
        assert v1.runs.get_workflow_run(run.id).execution_state.value == "IN_PROGRESS"
        stopped = v1.runs.stop_workflow_run(run.id)
        assert stopped.execution_state.value == "FAILED" and stopped.error == "Stopped by user"
        history = http.get(f"/wf/pause_history/{run.id}/").json()
    assert [h["resume_time"] is not None for h in history] == [True]
