"""Runs started by the previous release finish on the current code, as an upgrade would have it.

The previous release is commit `OLD_RELEASE`, exported with `git archive`. On a database of its own
(created and migrated by the old code) and a task queue of its own, the old API and worker start a
run that pauses at a human step and a batch. Once the run is PAUSED and the batch is mid-way, the
old worker is killed (SIGKILL) and the old API stopped; the current API (which migrates the database
forward) and worker take over, the run is approved, and both must finish exactly as they would have.

With RECORD_HISTORIES=1 the histories of both, as the old worker left them, are written to
tests/histories/ (paused_open, batch_midway_parent, batch_midway_chunk) for the replay test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

import devstack
from db.session import async_url
from tests.builders import double_graph
from tests.conftest import ROOT, Stack, free_port, reaches, wait_until
from tests.e2e.test_batches import csv_rows, make_dataset, make_workflow, output_lines, start_batch
from tests.e2e.test_human_steps import decision, gated
from workflows.search_attributes import temporal_workflow_id

pytestmark = pytest.mark.e2e

OLD_RELEASE = "61b2171"
HISTORIES = ROOT / "tests" / "histories"
# One chunk (the stack's batch_chunk_rows), slow enough per row that it is still going when the old
# worker is killed: a chunk's rows run in workflow tasks that the worker extends every ~8 s, and the
# kill waits for one of those, so the chunk's history holds some rows' work.
ROWS = 40
SLOW_DOUBLE = "import time\ntime.sleep(0.3)\nreturn {'y': input_model.input_node.x * 2}"


@pytest.fixture(scope="module")
def old_tree() -> Iterator[Path]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: the previous release cannot be exported")
    found = subprocess.run([git, "-C", str(ROOT), "cat-file", "-e", f"{OLD_RELEASE}^{{commit}}"], check=False)
    if found.returncode != 0:
        pytest.skip(f"commit {OLD_RELEASE} (the previous release) is not in this clone")
    tmp = Path(tempfile.mkdtemp(prefix="old-release-"))
    try:
        archive = subprocess.run(
            [git, "-C", str(ROOT), "archive", OLD_RELEASE], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
async def upgrade_env(stack: Stack) -> AsyncIterator[dict[str, str]]:
    """A fresh database and task queue, so the old code migrates its own schema and no other worker
    takes this test's tasks; the stack's environment otherwise."""
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(async_url(stack.database_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield stack.env(
            DATABASE_URL=make_url(stack.database_url)
            .set(database=name)
            .render_as_string(hide_password=False),
            TEMPORAL_TASK_QUEUE=f"upgrade-{uuid.uuid4().hex[:8]}",
        )
    finally:
        await admin.dispose()


def old_process(args: list[str], tree: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process of the previous release: its own modules first on the path."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def old_owner_key(tree: Path, env: dict[str, str]) -> str:
    """An owner's API key, made by the old admin CLI (which also migrates the fresh database)."""
    done = subprocess.run(
        [
            sys.executable,
            "admin.py",
            "create-tenant",
            f"old-{uuid.uuid4().hex[:6]}",
            "--owner-email",
            "o@x.io",
        ],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("key"))


async def record(client: Client, name: str, workflow_id: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))


async def test_runs_started_by_the_previous_release_complete_on_the_current_code(
    stack: Stack, old_tree: Path, upgrade_env: dict[str, str]
) -> None:
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    headers = {"Authorization": f"Bearer {old_owner_key(old_tree, upgrade_env)}"}
    port = free_port()
    old_api = old_process(
        ["-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1", "--port", str(port)],
        old_tree,
        {**upgrade_env, "HOST": "127.0.0.1", "PORT": str(port)},
        stack.tmp / "old-api.log",
    )
    old_worker = old_process(["worker.py"], old_tree, upgrade_env, stack.tmp / "old-worker.log")
    try:
        devstack.wait_for_port("127.0.0.1", port, proc=old_api)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as old:
            wf = (await old.post("/wf/", json={"name": "upgrade-paused", "definition": gated()})).json()["id"]
            paused = (
                await old.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 3}}})
            ).json()
            dataset_id = await make_dataset(old, csv_rows(ROWS))
            batch = await start_batch(
                old, await make_workflow(old, double_graph(SLOW_DOUBLE)), dataset_id, size=2
            )
            await reaches(old, paused["id"], "PAUSED", within=60)
            chunk = client.get_workflow_handle(f"{temporal_workflow_id(batch['id'])}/rows-0")

            async def midway() -> bool:
                try:
                    history = await chunk.fetch_history()
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND:  # the parent has not started the chunk yet
                        return False
                    raise
                return any(e.HasField("marker_recorded_event_attributes") for e in history.events)

            await wait_until(midway, within=60, interval=0.25)
            devstack.stop(old_worker, sig=9)
            done_by_old = (await old.get(f"/run/{batch['id']}/")).json()["rows_done"]
    finally:
        devstack.stop(old_worker, sig=9)
        devstack.stop(old_api)
    assert 0 < done_by_old < ROWS, "the batch must be mid-way when the old worker dies"
    if os.environ.get("RECORD_HISTORIES") == "1":
        await record(client, "paused_open", temporal_workflow_id(paused["id"]))
        await record(client, "batch_midway_parent", temporal_workflow_id(batch["id"]))
        await record(client, "batch_midway_chunk", chunk.id)

    from api.app import create_app

    settings = stack.settings(
        database_url=upgrade_env["DATABASE_URL"], temporal_task_queue=upgrade_env["TEMPORAL_TASK_QUEUE"]
    )
    app = create_app(settings)
    worker = devstack.spawn([sys.executable, "worker.py"], stack.tmp / "upgrade-worker.log", upgrade_env)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers, timeout=60
            ) as api,
        ):
            resp = await api.post(
                f"/wf/process_pause_action/{paused['id']}/", json=decision(inputs={"ok": True})
            )
            assert resp.status_code == 200, resp.text

            run = await reaches(api, paused["id"], "COMPLETED", within=60)
            assert run["outputs"]["output_node"] == {"seen": {"input_node": {"x": 3}, "ok": True}}
            assert run["outputs"]["side"] == {"s": 4}
            done = await reaches(api, batch["id"], "COMPLETED", within=90)
            assert (done["rows_total"], done["rows_done"], done["rows_failed"]) == (ROWS, ROWS, 0)
            lines = await output_lines(api, batch["output_file_id"])
            assert [line["_row"] for line in lines] == list(range(ROWS))
            assert [line["py1"]["y"] for line in lines] == [2 * i for i in range(ROWS)]
            children = (await api.get(f"/run/{batch['id']}/children/", params={"page_size": 100})).json()
            assert len(children) == ROWS
            assert {c["status"] for c in children} == {"COMPLETED"}
    finally:
        devstack.stop(worker, sig=9)
