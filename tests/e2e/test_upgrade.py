"""Runs started by the previous release's worker finish on the current code.

The previous release is commit `OLD_RELEASE`, exported with `git archive`. Its worker starts a run
that pauses at a human step and a batch; once the run is PAUSED and the batch is mid-way, that worker
is killed (SIGKILL) and a worker of the current code takes over.

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
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from tests.builders import double_graph
from tests.conftest import ROOT, Stack, reaches, wait_until
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


def start_old_worker(stack: Stack, tree: Path) -> subprocess.Popen[bytes]:
    """The previous release's worker: its own modules first on the path, the stack's settings."""
    log = (stack.tmp / "old-worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=tree,
        env=stack.env(PYTHONPATH=str(tree)),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def record(client: Client, name: str, workflow_id: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))


async def test_runs_started_by_the_previous_release_complete_on_the_current_code(
    api: httpx.AsyncClient, stack: Stack, old_tree: Path
) -> None:
    try:
        await _old_starts_new_finishes(api, stack, old_tree)
    finally:
        if not stack.workers:  # the rest of the session needs a worker of the current code
            stack.start_worker()


async def _old_starts_new_finishes(api: httpx.AsyncClient, stack: Stack, old_tree: Path) -> None:
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    stack.kill_workers()
    old = start_old_worker(stack, old_tree)
    try:
        wf = (await api.post("/wf/", json={"name": "upgrade-paused", "definition": gated()})).json()["id"]
        paused = (
            await api.post(f"/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": 3}}})
        ).json()
        dataset_id = await make_dataset(api, csv_rows(ROWS))
        batch = await start_batch(
            api, await make_workflow(api, double_graph(SLOW_DOUBLE)), dataset_id, size=2
        )
        await reaches(api, paused["id"], "PAUSED", within=60)

        chunk = client.get_workflow_handle(f"{temporal_workflow_id(batch['id'])}/rows-0")

        async def midway() -> bool:
            history = await chunk.fetch_history()
            return any(e.HasField("marker_recorded_event_attributes") for e in history.events)

        await wait_until(midway, within=60, interval=0.25)
    finally:
        devstack.stop(old, sig=9)
    done_by_old = (await api.get(f"/run/{batch['id']}/")).json()["rows_done"]
    assert 0 < done_by_old < ROWS, "the batch must be mid-way when the old worker dies"
    if os.environ.get("RECORD_HISTORIES") == "1":
        await record(client, "paused_open", temporal_workflow_id(paused["id"]))
        await record(client, "batch_midway_parent", temporal_workflow_id(batch["id"]))
        await record(client, "batch_midway_chunk", f"{temporal_workflow_id(batch['id'])}/rows-0")

    stack.start_worker()
    resp = await api.post(f"/wf/process_pause_action/{paused['id']}/", json=decision(inputs={"ok": True}))
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
