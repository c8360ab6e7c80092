"""Regression tests for review findings on v1 drafts: racing creates, refused ingestion starts, refused
PATCHes, clone inputs, guarded delete, `started_at` of never-started runs, and `runs.updated_at`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ksapi
import pytest
from ksapi.exceptions import ConflictException
from sqlalchemy import text
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.migrate import alembic_config
from db.session import make_engine
from tests.conftest import Stack, Tenant
from tests.e2e.v1_client import (
    SLEEP,
    V1,
    new_definition,
    poll,
    raw,
    set_graph,
    settled,
    upload,
    v1_graph,
)
from workflows.ingest_workflow import IngestDocumentWorkflow

pytestmark = pytest.mark.e2e


# -- 1. racing creates with one idempotency key ---------------------------------------------------------


async def test_concurrent_creates_with_one_idempotency_key_get_one_run(
    live_api: str, tenant: Tenant, member: Tenant, v1: V1, root: uuid.UUID
) -> None:
    d = new_definition(v1, root)
    url = f"/v1/workflow-definitions/{d.id}/runs"
    async with (
        httpx.AsyncClient(base_url=live_api, headers=tenant.headers, timeout=60) as mine,
        httpx.AsyncClient(base_url=live_api, headers=member.headers, timeout=60) as theirs,
    ):
        for _ in range(3):
            key = uuid.uuid4().hex
            replies = await asyncio.gather(*(mine.post(url, data={"idempotency_key": key}) for _ in range(8)))
            assert [r.status_code for r in replies] == [201] * 8, [r.text for r in replies]
            assert len({r.json()["id"] for r in replies}) == 1
        # Same key and same name from two users: one run each user may see, never the other's run.
        for _ in range(3):
            key, name = uuid.uuid4().hex, f"n-{uuid.uuid4().hex[:8]}"
            form = {"idempotency_key": key, "name": name}
            replies = await asyncio.gather(
                *(c.post(url, data=form) for c in (mine, theirs, mine, theirs, mine, theirs))
            )
            codes = sorted({r.status_code for r in replies})
            assert set(codes) <= {201, 409}, [r.text for r in replies]
            for who, r in zip((tenant, member) * 3, replies, strict=True):
                if r.status_code == 201:
                    assert r.json()["triggered_by"]["user_id"] == str(who.user_id)
            assert len({r.json()["id"] for r in replies if r.status_code == 201}) == 1


# -- 2. Temporal refuses an ingestion start -------------------------------------------------------------


@pytest.fixture
def refuse_ingestion(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Temporal refuses every `IngestDocumentWorkflow` start of the in-process API; yields the refused ids."""
    refused: list[str] = []
    original = Client.start_workflow

    async def start_workflow(self: Client, workflow: Any, *args: Any, **kwargs: Any) -> Any:
        if workflow is IngestDocumentWorkflow.run:
            refused.append(kwargs.get("id", ""))
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        return await original(self, workflow, *args, **kwargs)

    monkeypatch.setattr(Client, "start_workflow", start_workflow)
    yield refused


@pytest.fixture
async def api(app_client: httpx.AsyncClient, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    app_client.headers.update(tenant.headers)
    yield app_client


async def _definition(api: httpx.AsyncClient) -> str:
    root = (await api.get("/v1/folders")).json()["items"][0]["path_part_id"]
    d = await api.post(
        "/v1/workflow-definitions",
        json={"name": f"f-{uuid.uuid4().hex[:8]}", "parent_path_part_id": root, "approval_required": False},
    )
    assert d.status_code == 201, d.text
    return str(d.json()["id"])


async def _ingest(api: httpx.AsyncClient, run: dict[str, Any], name: str, body: bytes) -> httpx.Response:
    return await api.post(
        "/v1/documents/ingest",
        files={"file": (name, body, "text/plain")},
        data={"path_part_id": run["inputs"]["path_part_id"]},
    )


async def test_a_refused_ingestion_start_fails_the_upload_and_settles_the_draft(
    api: httpx.AsyncClient, refuse_ingestion: list[str]
) -> None:
    did = await _definition(api)
    plain = (await api.post(f"/v1/workflow-definitions/{did}/runs")).json()
    resp = await _ingest(api, plain, "a.txt", b"hello")
    assert resp.status_code == 503, resp.text
    assert refuse_ingestion
    run = (await api.get(f"/v1/workflow-runs/{plain['id']}")).json()
    assert run["execution_state"] == "NOT_STARTED"
    [asset] = run["inputs"]["assets"]
    doc = (await api.get(f"/v1/documents/{asset['id']}")).json()
    assert doc["ingest_status"] == "FAILED"
    assert (await api.post(f"/v1/workflow-runs/{plain['id']}/start")).status_code == 409
    assert (await api.delete(f"/v1/documents/{asset['id']}")).status_code == 204
    assert (await api.post(f"/v1/workflow-runs/{plain['id']}/start")).status_code == 202

    # Armed: the refused upload fails the run, which never started.
    armed = (await api.post(f"/v1/workflow-definitions/{did}/runs", data={"auto_start": "true"})).json()
    assert (await _ingest(api, armed, "b.txt", b"hello")).status_code == 503
    run = (await api.get(f"/v1/workflow-runs/{armed['id']}")).json()
    assert run["execution_state"] == "FAILED"
    assert "failed ingestion" in run["error"] and run["started_at"] is None

    # Deprecated files on create: the run is created (201), not left PENDING.
    made = await api.post(
        f"/v1/workflow-definitions/{did}/runs", files={"files": ("c.txt", b"hello", "text/plain")}
    )
    assert made.status_code == 201, made.text
    run = (await api.get(f"/v1/workflow-runs/{made.json()['id']}")).json()
    assert run["execution_state"] == "NOT_STARTED"


async def test_deleting_an_upload_whose_ingestion_never_started_settles_the_draft(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API died between storing an upload and starting its ingestion: deleting the upload frees the draft."""

    async def lost(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr("core.v1_resources.start_ingestion", lost)
    did = await _definition(api)
    for armed in (False, True):
        form = {"auto_start": "true"} if armed else {}
        draft = (await api.post(f"/v1/workflow-definitions/{did}/runs", data=form)).json()
        assert (await _ingest(api, draft, "a.txt", b"hello")).status_code == 201
        run = (await api.get(f"/v1/workflow-runs/{draft['id']}")).json()
        assert run["execution_state"] == "PENDING"
        [asset] = run["inputs"]["assets"]
        assert (await api.delete(f"/v1/documents/{asset['id']}")).status_code == 204
        run = (await api.get(f"/v1/workflow-runs/{draft['id']}")).json()
        if armed:  # nothing left to wait for: the armed draft starts itself
            assert run["execution_state"] in ("IN_PROGRESS", "COMPLETED"), run
        else:
            assert run["execution_state"] == "NOT_STARTED"


# -- 3. a refused PATCH changes nothing ---------------------------------------------------------------


def test_a_patch_refused_for_a_failed_input_changes_nothing(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id, name=f"before-{uuid.uuid4().hex[:6]}")
    upload(v1, run, "bad.txt", b"\xff\xfe not utf-8")
    before = settled(v1, run.id, "NOT_STARTED")
    with pytest.raises(ConflictException):
        v1.runs.update_workflow_run(
            run.id,
            ksapi.UpdateWorkflowRunRequest(
                name=f"after-{uuid.uuid4().hex[:6]}",
                auto_start=True,
                user_message="hi",
                input_scope=[root],
            ),
        )
    after = v1.runs.get_workflow_run(run.id)
    assert after.name == before.name and after.auto_start is False
    assert after.auto_start_user_message is None
    assert after.inputs.materialized_path == before.inputs.materialized_path
    assert after.updated_at == before.updated_at


# -- 4. clone inputs ---------------------------------------------------------------------------------


def test_clone_with_inputs_neither_duplicates_common_files_nor_loses_uploads(v1: V1, root: uuid.UUID) -> None:
    common = v1.docs.ingest_document(
        file=(f"common-{uuid.uuid4().hex[:6]}.txt", b"shared"), path_part_id=root
    )
    common_doc = v1.api(ksapi.DocumentsApi).get_document(common.document_id)
    d = new_definition(v1, root, common_file_path_part_ids=[common_doc.path_part_id])
    source = v1.defs.create_workflow_run(d.id)
    upload(v1, source, "mine.txt", b"my input")
    settled(v1, source.id, "NOT_STARTED")
    v1.runs.start_workflow_run(source.id)
    done = settled(v1, source.id, "COMPLETED")
    origins = sorted(i.origin.value for i in done.run_snapshot.inputs)
    assert origins == ["DEFINITION_COMMON", "RUN_UPLOAD"]

    clone = v1.runs.clone_workflow_run(source.id, ksapi.CloneWorkflowRunRequest(include_inputs=True))
    assert [a.name for a in clone.inputs.assets or []] == ["mine.txt"]
    v1.runs.delete_workflow_run(source.id)  # the source's uploads go with it; the clone keeps its own
    v1.runs.start_workflow_run(clone.id)
    ran = settled(v1, clone.id, "COMPLETED")
    inputs = ran.run_snapshot.inputs
    assert sorted(i.origin.value for i in inputs) == ["DEFINITION_COMMON", "RUN_UPLOAD"]
    assert len({i.path_part_id for i in inputs}) == len(inputs)
    assert [i.materialized_path.rsplit("/", 1)[-1] for i in inputs if i.origin.value == "RUN_UPLOAD"] == [
        "mine.txt"
    ]


# -- 5. delete against a concurrent start ------------------------------------------------------------


async def test_delete_loses_to_a_start_that_commits_first(
    live_api: str, tenant: Tenant, stack: Stack
) -> None:
    async with httpx.AsyncClient(base_url=live_api, headers=tenant.headers, timeout=60) as api:
        did = await _definition(api)
        run = (await api.post(f"/v1/workflow-definitions/{did}/runs")).json()
        engine = make_engine(stack.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                # A start in flight: it has moved the draft (row locked) but not committed yet.
                await conn.execute(
                    text(
                        "UPDATE runs SET draft_state = NULL, snapshot = '{}', start_time = now() WHERE id = :id"
                    ),
                    {"id": run["id"]},
                )
                deleting = asyncio.create_task(api.delete(f"/v1/workflow-runs/{run['id']}"))
                await asyncio.sleep(1.0)
                assert not deleting.done()
                await conn.commit()
            resp = await deleting
        finally:
            await engine.dispose()
        assert resp.status_code == 409, resp.text
        assert (await api.get(f"/v1/workflow-runs/{run['id']}")).status_code == 200


# -- 6. started_at of a never-started run ------------------------------------------------------------


def test_a_run_failed_by_its_inputs_never_started(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    armed = v1.defs.create_workflow_run(d.id, auto_start=True)
    upload(v1, armed, "bad.txt", b"\xff\xfe not utf-8")
    failed = settled(v1, armed.id, "FAILED")
    assert failed.started_at is None and failed.run_snapshot is None
    assert failed.completed_at is not None
    last = v1.defs.get_workflow_definition(d.id).last_run
    assert last is not None and last.id == armed.id and last.started_at is None
    listed = v1.defs.list_workflow_runs(d.id).items
    assert [r.started_at for r in listed] == [None]


# -- 7. runs.updated_at ------------------------------------------------------------------------------


def test_engine_transitions_move_updated_at(v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant) -> None:
    d = new_definition(v1, root)
    set_graph(live_api, tenant.key, d.id, v1_graph(SLEEP.format(secs=3)))
    run = v1.defs.create_workflow_run(d.id)
    started = v1.runs.start_workflow_run(run.id)
    with raw(live_api, tenant.key) as http:  # the engine's PENDING -> RUNNING write touches only status
        poll(lambda: http.get(f"/run/{run.id}/").json()["status"], lambda s: s == "RUNNING")
    running = v1.runs.get_workflow_run(run.id)
    assert running.execution_state.value == "IN_PROGRESS"
    assert running.updated_at > started.updated_at
    done = settled(v1, run.id, "COMPLETED")
    assert done.updated_at >= running.updated_at and done.updated_at >= done.completed_at


async def test_migrations_backfill_run_times_and_install_the_updated_at_trigger(stack: Stack) -> None:
    from alembic import command

    url = make_url(stack.database_url)
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = make_engine(stack.database_url, pool_size=1)
    fresh = url.set(database=name).render_as_string(hide_password=False)
    async with admin.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
            text(f'CREATE DATABASE "{name}"')
        )
    engine = make_engine(fresh, pool_size=1)
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(fresh), "0004")
        started = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        ended = started + timedelta(minutes=5)
        ids = {k: uuid.uuid4() for k in ("tenant", "wf", "done", "open")}
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO tenants (id, name, created_at) VALUES (:id, 't', now())"),
                {"id": ids["tenant"]},
            )
            await conn.execute(
                text(
                    "INSERT INTO workflows (id, tenant_id, name, description, definition, created_at, updated_at)"
                    " VALUES (:id, :t, 'w', '', '{}', now(), now())"
                ),
                {"id": ids["wf"], "t": ids["tenant"]},
            )
            for key, end in (("done", ended), ("open", None)):
                await conn.execute(
                    text(
                        "INSERT INTO runs (id, tenant_id, workflow_id, status, run_type, start_time, end_time)"
                        " VALUES (:id, :t, :w, 'COMPLETED', 'interactive', :s, :e)"
                    ),
                    {"id": ids[key], "t": ids["tenant"], "w": ids["wf"], "s": started, "e": end},
                )
        await asyncio.to_thread(command.upgrade, alembic_config(fresh), "head")
        async with engine.begin() as conn:
            rows = {
                r[0]: (r[1], r[2])
                for r in await conn.execute(text("SELECT id, created_at, updated_at FROM runs"))
            }
            assert rows[ids["done"]] == (started, ended)
            assert rows[ids["open"]] == (started, started)
            # A write that does not touch updated_at (as the engine's transitions) still moves it.
            await conn.execute(text("UPDATE runs SET status = 'FAILED' WHERE id = :id"), {"id": ids["open"]})
            moved = await conn.scalar(text("SELECT updated_at FROM runs WHERE id = :id"), {"id": ids["open"]})
            assert moved > datetime.now(UTC) - timedelta(minutes=1)
        await asyncio.to_thread(command.downgrade, alembic_config(fresh), "0005")
        async with engine.begin() as conn:
            assert not await conn.scalar(
                text("SELECT count(*) FROM pg_trigger WHERE tgname = 'runs_touch_updated_at'")
            )
            await conn.execute(
                text("UPDATE runs SET status = 'CANCELED' WHERE id = :id"), {"id": ids["done"]}
            )
            kept = await conn.scalar(text("SELECT updated_at FROM runs WHERE id = :id"), {"id": ids["done"]})
            assert kept == ended
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text(f'DROP DATABASE IF EXISTS "{name}"')
            )
        await admin.dispose()
