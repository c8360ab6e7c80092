"""What a v1 run needs, through ksapi: definitions, folders, document ingestion into runs, API keys, users/me."""

from __future__ import annotations

import uuid
from typing import Any

import ksapi
import pytest
from ksapi import ApiKeysApi, UsersApi
from ksapi.exceptions import ConflictException, NotFoundException, UnauthorizedException

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
    upload,
    v1_graph,
)

pytestmark = pytest.mark.e2e


# -- definitions -----------------------------------------------------------------------------------------


def test_definition_is_the_workflow_api_workflow_and_starts_from_the_default_graph(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    resp = v1.defs.create_workflow_definition_with_http_info(
        ksapi.CreateWorkflowDefinitionRequest(
            name=f"d-{uuid.uuid4().hex[:6]}",
            parent_path_part_id=root,
            approval_required=True,
            max_run_duration_seconds=600,
        )
    )
    assert resp.status_code == 201
    d = resp.data
    assert d.approval_required is True and d.max_run_duration_seconds == 600 and d.is_active is True
    assert d.parent_path_part_id == root and d.materialized_path == f"/{d.name}"
    with raw(live_api, tenant.key) as http:
        wf = http.get(f"/wf/{d.id}/").json()
    assert wf["name"] == d.name
    assert [n["node_type"] for n in wf["definition"]["nodes"]] == ["InputNode"]
    assert v1.defs.get_workflow_definition(d.id).instruction_path_part_id == d.instruction_path_part_id


def test_workflow_made_through_the_workflow_api_is_a_v1_definition(
    v1: V1, live_api: str, tenant: Tenant
) -> None:
    with raw(live_api, tenant.key) as http:
        wf = http.post("/wf/", json={"name": f"pyspur-{uuid.uuid4().hex[:6]}"}).json()
    d = v1.defs.get_workflow_definition(uuid.UUID(wf["id"]))
    assert d.name == wf["name"] and d.max_run_duration_seconds == 1800
    with raw(live_api, tenant.key) as http:
        body = {"initial_inputs": {"input_node": {"input_1": "hi"}}}
        assert http.post(f"/wf/{wf['id']}/run/", json=body).status_code == 200
        [pyspur_run] = http.get(f"/wf/{wf['id']}/runs/").json()
    # A run started through the workflow API is seen through v1 too (one run model, two views).
    seen = v1.runs.get_workflow_run(uuid.UUID(pyspur_run["id"]))
    assert seen.execution_state.value == "COMPLETED" and seen.run_snapshot is None
    assert seen.id in {r.id for r in v1.defs.list_workflow_runs(d.id).items}
    run = v1.defs.create_workflow_run(d.id)
    v1.runs.start_workflow_run(run.id)
    settled(v1, run.id, "COMPLETED")


def test_definition_put_list_instantiate_and_delete(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = new_definition(v1, root)
    taken = new_definition(v1, root)
    folder = v1.folders.create_folder(
        ksapi.CreateFolderRequest(name=f"mv-{uuid.uuid4().hex[:6]}", parent_path_part_id=root)
    )
    put = ksapi.UpdateWorkflowDefinitionRequest(
        name=d.name + "-x",
        is_active=True,
        approval_required=True,
        description="new",
        parent_path_part_id=folder.path_part_id,
    )
    updated = v1.defs.update_workflow_definition(d.id, put)
    assert (
        updated.name == d.name + "-x" and updated.approval_required is True and updated.description == "new"
    )
    assert updated.parent_path_part_id == folder.path_part_id
    assert updated.instruction_path_part_id == d.instruction_path_part_id  # null retains it
    with pytest.raises(ConflictException):
        v1.defs.update_workflow_definition(
            d.id,
            ksapi.UpdateWorkflowDefinitionRequest(name=taken.name, is_active=True, approval_required=False),
        )
    found = v1.defs.list_workflow_definitions(search=updated.name, limit=100)
    assert [x.id for x in found.items] == [d.id] and found.total == 1
    approval = v1.defs.list_workflow_definitions(needs_approval=True, limit=100)
    assert d.id in {x.id for x in approval.items} and taken.id not in {x.id for x in approval.items}
    copy = v1.defs.instantiate_workflow_template_with_http_info(
        d.id,
        ksapi.InstantiateWorkflowTemplateRequest(
            parent_path_part_id=root, name=f"copy-{uuid.uuid4().hex[:6]}"
        ),
    )
    assert copy.status_code == 201
    assert copy.data.created_from_id == d.id and copy.data.approval_required is True
    assert v1.defs.get_workflow_definition(d.id).copy_count == 1
    # A move is refused while a run is in progress.
    set_graph(live_api, tenant.key, d.id, v1_graph(SLEEP.format(secs=30)))
    run = v1.defs.create_workflow_run(d.id)
    v1.runs.start_workflow_run(run.id)
    with pytest.raises(ConflictException):
        v1.defs.update_workflow_definition(
            d.id,
            ksapi.UpdateWorkflowDefinitionRequest(
                name=updated.name, is_active=True, approval_required=True, parent_path_part_id=root
            ),
        )
    v1.runs.stop_workflow_run(run.id)
    last: Any = v1.defs.get_workflow_definition(d.id).last_run
    assert last.execution_state.value == "FAILED"
    assert v1.defs.delete_workflow_definition_with_http_info(d.id).status_code == 204
    with pytest.raises(NotFoundException):
        v1.defs.get_workflow_definition(d.id)
    with pytest.raises(NotFoundException):
        v1.runs.get_workflow_run(run.id)


def test_templates_cannot_have_runs_until_instantiated(v1: V1, root: uuid.UUID) -> None:
    t = new_definition(v1, root, is_template=True)
    assert t.is_template is True
    with pytest.raises(ConflictException):
        v1.defs.create_workflow_run(t.id)
    assert t.id not in {x.id for x in v1.defs.list_workflow_definitions(limit=100).items}
    assert t.id in {x.id for x in v1.defs.list_workflow_definitions(is_template=True, limit=100).items}
    made = v1.defs.instantiate_workflow_template(
        t.id, ksapi.InstantiateWorkflowTemplateRequest(parent_path_part_id=root)
    )
    assert made.is_template is False
    v1.defs.create_workflow_run(made.id)


# -- folders -----------------------------------------------------------------------------------------------


def test_folders_create_get_list_contents_and_delete(v1: V1, root: uuid.UUID) -> None:
    top = v1.folders.list_folders()
    assert top.items[0].parent_path_part_id is None and top.items[0].materialized_path == "/"
    name = f"f-{uuid.uuid4().hex[:6]}"
    made = v1.folders.create_folder_with_http_info(
        ksapi.CreateFolderRequest(name=name, parent_path_part_id=root)
    )
    assert made.status_code == 201
    f = made.data
    assert f.materialized_path == f"/{name}" and f.parent_path_part_id == root
    with pytest.raises(ConflictException):
        v1.folders.create_folder(ksapi.CreateFolderRequest(name=name, parent_path_part_id=root))
    child = v1.folders.create_folder(
        ksapi.CreateFolderRequest(name="child", parent_path_part_id=f.path_part_id)
    )
    assert v1.folders.get_folder(f.id).path_part_id == f.path_part_id
    assert [x.id for x in v1.folders.list_folders(parent_path_part_id=f.path_part_id).items] == [child.id]
    doc = v1.docs.ingest_document(file=("notes.txt", b"kb text"), path_part_id=f.path_part_id)
    contents = v1.folders.list_folder_contents(f.id)
    kinds = sorted(str(getattr(item.actual_instance, "part_type", "")) for item in contents.items)
    assert kinds == ["DOCUMENT", "FOLDER"] and contents.total == 2
    with pytest.raises(ConflictException):
        v1.folders.delete_folder(f.id)
    assert doc.document_id
    v1.folders.delete_folder(child.id)
    with pytest.raises(NotFoundException):
        v1.folders.get_folder(child.id)


# -- documents into a run's inputs/ ------------------------------------------------------------------------


def test_upload_makes_the_draft_pending_until_ingested_then_start_pins_it(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with_echo(v1, root, live_api, tenant)
    run = v1.defs.create_workflow_run(d.id)
    resp = v1.docs.ingest_document_with_http_info(
        file=("brief.md", b"# Brief\nhello"), path_part_id=run.inputs.path_part_id
    )
    assert resp.status_code == 201 and resp.data.workflow_id.startswith("ingest-")
    assert v1.runs.get_workflow_run(run.id).execution_state.value in ("PENDING", "NOT_STARTED")
    ready = settled(v1, run.id, "NOT_STARTED")
    assert [a.name for a in ready.inputs.assets or []] == ["brief.md"]
    renamed = v1.runs.update_workflow_run(run.id, ksapi.UpdateWorkflowRunRequest(name=f"r-{run.id}"))
    inputs_folder = v1.folders.get_folder(renamed.inputs.id)
    assert (
        inputs_folder.materialized_path
        == renamed.inputs.materialized_path
        == f"{renamed.materialized_path}/inputs"
    )
    [doc] = v1.folders.list_folder_contents(inputs_folder.id).items
    assert (
        getattr(doc.actual_instance, "materialized_path", "") == f"{inputs_folder.materialized_path}/brief.md"
    )
    v1.runs.start_workflow_run(run.id)
    done = settled(v1, run.id, "COMPLETED")
    [pinned] = done.run_snapshot.inputs
    assert pinned.part_type == "DOCUMENT_VERSION" and pinned.origin.value == "RUN_UPLOAD"
    with raw(live_api, tenant.key) as http:
        out = http.get(f"/run/{run.id}/").json()["outputs"]["output_node"]
    assert out["inputs"][0]["text"] == "# Brief\nhello" and out["inputs"][0]["name"] == "brief.md"
    with pytest.raises(ConflictException):
        upload(v1, run, "late.txt", b"late")


def definition_with_echo(v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant) -> Any:
    d = new_definition(v1, root)
    set_graph(live_api, tenant.key, d.id, v1_graph())
    return d


def test_armed_run_starts_itself_once_its_uploads_are_ingested(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with_echo(v1, root, live_api, tenant)
    # Both uploads in the create request: uploaded one by one, the first could be ingested (and start
    # the run) before the second arrives, which is the rule working, not what this test is about.
    run = v1.defs.create_workflow_run(
        d.id, auto_start=True, user_message="auto note", files=[("a.txt", b"alpha"), ("b.json", b'{"b": 1}')]
    )
    assert run.auto_start is True and run.execution_state.value in ("PENDING", "IN_PROGRESS", "COMPLETED")
    done = settled(v1, run.id, "COMPLETED")
    assert len(done.run_snapshot.inputs) == 2 and done.run_snapshot.user_message == "auto note"


def test_failed_ingestion_fails_an_armed_run_and_blocks_start_of_an_unarmed_one(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with_echo(v1, root, live_api, tenant)
    armed = v1.defs.create_workflow_run(d.id, auto_start=True)
    upload(v1, armed, "bad.txt", b"\xff\xfe not utf-8")
    failed = settled(v1, armed.id, "FAILED")
    assert "bad.txt" in (failed.error or "") and failed.run_snapshot is None
    rearmed = v1.runs.retry_workflow_run(armed.id)
    assert rearmed.execution_state.value == "NOT_STARTED"  # it never started: retry re-arms the draft
    plain = v1.defs.create_workflow_run(d.id)
    bad = upload(v1, plain, "bad.txt", b"\xff\xfe not utf-8")
    settled(v1, plain.id, "NOT_STARTED")
    with pytest.raises(ConflictException):
        v1.runs.start_workflow_run(plain.id)
    # Removing the failed upload makes the draft startable.
    assert v1.docs.delete_document_with_http_info(bad.document_id).status_code == 204
    v1.runs.start_workflow_run(plain.id)
    settled(v1, plain.id, "COMPLETED")
    with pytest.raises(NotFoundException):
        v1.docs.delete_document(bad.document_id)


def test_deprecated_files_on_create_make_a_pending_draft(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id, files=[("x.txt", b"x")])
    assert run.execution_state.value == "PENDING"
    assert [a.name for a in run.inputs.assets or []] == ["x.txt"]
    poll(lambda: v1.runs.get_workflow_run(run.id), lambda r: r.execution_state.value == "NOT_STARTED")


# -- API keys and users --------------------------------------------------------------------------------------


def test_api_keys_create_list_delete_and_a_deleted_key_no_longer_works(
    v1: V1, live_api: str, tenant: Tenant
) -> None:
    # ksapi declares only the (browser) cookie scheme for ApiKeysApi: it sends the bare cookie value.
    keys = connect(live_api, tenant.key, cookie=True).api(ApiKeysApi)
    made = keys.create_api_key_with_http_info(ksapi.CreateApiKeyRequest(name="ci"))
    assert made.status_code == 201
    key = made.data
    assert key.key.startswith("ks_") and key.name == "ci"
    assert key.id in {k.id for k in keys.list_api_keys()}
    fresh = connect(live_api, key.key)
    assert fresh.api(UsersApi).get_me().id == v1.api(UsersApi).get_me().id
    keys.delete_api_key(key.id)
    assert key.id not in {k.id for k in keys.list_api_keys()}
    with pytest.raises(UnauthorizedException):
        fresh.api(UsersApi).get_me()
    with pytest.raises(NotFoundException):
        keys.delete_api_key(key.id)


def test_users_me_names_the_caller_and_role(v1: V1, tenant: Tenant) -> None:
    me = v1.api(UsersApi).get_me()
    assert me.id == tenant.user_id and me.current_tenant_id == tenant.tenant_id
    assert me.current_tenant_role.value == "OWNER"


def test_arming_a_pending_run_starts_it_once_its_uploads_are_ingested(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = definition_with_echo(v1, root, live_api, tenant)
    run = v1.defs.create_workflow_run(d.id)
    upload(v1, run, "one.md", b"one")
    armed = v1.runs.update_workflow_run(run.id, ksapi.UpdateWorkflowRunRequest(auto_start=True))
    assert armed.auto_start is True
    done = settled(v1, run.id, "COMPLETED")
    assert [i.origin.value for i in done.run_snapshot.inputs if i.origin] == ["RUN_UPLOAD"]


def test_folders_and_documents_of_another_tenant_are_not_found(
    v1: V1, root: uuid.UUID, live_api: str, other_tenant: Tenant
) -> None:
    f = v1.folders.create_folder(
        ksapi.CreateFolderRequest(name=f"own-{uuid.uuid4().hex[:6]}", parent_path_part_id=root)
    )
    stranger = connect(live_api, other_tenant.key)
    with pytest.raises(NotFoundException):
        stranger.folders.get_folder(f.id)
    with pytest.raises(NotFoundException):
        stranger.docs.ingest_document(file=("x.txt", b"x"), path_part_id=f.path_part_id)
    with pytest.raises(NotFoundException):
        stranger.folders.create_folder(
            ksapi.CreateFolderRequest(name="in", parent_path_part_id=f.path_part_id)
        )
    assert stranger.folders.list_folders().items[0].path_part_id != root


def test_instruction_document_text_reaches_the_graph_and_is_pinned(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    folder = v1.folders.create_folder(
        ksapi.CreateFolderRequest(name=f"i-{uuid.uuid4().hex[:6]}", parent_path_part_id=root)
    )
    made = v1.docs.ingest_document(file=("howto.md", b"Be brief."), path_part_id=folder.path_part_id)
    with raw(live_api, tenant.key) as http:
        poll(
            lambda: http.get(f"/v1/documents/{made.document_id}").json()["ingest_status"],
            lambda s: s == "COMPLETED",
        )
    [item] = v1.folders.list_folder_contents(folder.id).items
    doc: Any = item.actual_instance
    d = definition_with_echo(v1, root, live_api, tenant)
    put = ksapi.UpdateWorkflowDefinitionRequest(
        name=d.name, is_active=True, approval_required=False, instruction_path_part_id=doc.path_part_id
    )
    assert v1.defs.update_workflow_definition(d.id, put).instruction_path_part_id == doc.path_part_id
    run = v1.defs.create_workflow_run(d.id)
    v1.runs.start_workflow_run(run.id)
    done = settled(v1, run.id, "COMPLETED")
    assert done.run_snapshot.instruction.path_part_id == doc.active_version.path_part_id
    with raw(live_api, tenant.key) as http:
        payload = http.get(f"/run/{run.id}/").json()["outputs"]["input_node"]
    assert payload["instruction"] == "Be brief."
