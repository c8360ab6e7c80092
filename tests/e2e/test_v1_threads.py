"""v1 run threads through the unmodified ksapi client: Start opens the run's thread, which tells the run's
story as messages; a USER message is 409 `run_in_progress` while a run of the thread is going, and on a
finished thread starts a follow-up run in it that sees the earlier messages as `message_history`."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import ksapi
import pytest
from ksapi.exceptions import BadRequestException, ConflictException, NotFoundException

from tests.builders import definition, input_node, link, node, output_node, python_node
from tests.conftest import Tenant
from tests.e2e.v1_client import SLEEP, V1, connect, new_definition, poll, raw, set_graph, settled, v1_graph

pytestmark = pytest.mark.e2e

FIELDS = {"user_message": "string", "instruction": "string", "inputs": "array"}


def gated_graph() -> dict[str, Any]:
    return definition(
        [
            input_node(FIELDS),
            node("approve", "HumanInterventionNode", message="Ship it?"),
            output_node({"message": "input_node.user_message"}),
        ],
        [link("input_node", "approve"), link("approve", "output_node"), link("input_node", "output_node")],
    )


HISTORY = (
    "h = getattr(input_model.input_node, 'message_history', None) or []\n"
    "return {'turns': len(h), 'roles': ','.join(m['role'] for m in h), 'first': h[0]['content'] if h else ''}"
)


def history_graph() -> dict[str, Any]:
    return definition(
        [
            input_node(FIELDS),
            python_node("py1", HISTORY, {"turns": "integer", "roles": "string", "first": "string"}),
            output_node({"turns": "py1.turns", "roles": "py1.roles", "first": "py1.first"}),
        ],
        [link("input_node", "py1"), link("py1", "output_node")],
    )


def scheduled(v1: V1, live_api: str, key: str, root: uuid.UUID, graph: dict[str, Any]) -> Any:
    d = new_definition(v1, root)
    set_graph(live_api, key, d.id, graph)
    return d


def started(v1: V1, d: Any, message: str) -> Any:
    run = v1.defs.create_workflow_run(d.id)
    assert run.run_thread_id is None  # a draft has no thread yet
    v1.runs.start_workflow_run(run.id, ksapi.StartWorkflowRunRequest(user_message=message))
    return v1.runs.get_workflow_run(run.id)


def story(v1: V1, thread_id: Any) -> list[tuple[str, str, bool | None]]:
    page = v1.api(ksapi.ThreadMessagesApi).list_thread_messages(thread_id, sort_dir=ksapi.SortDirection.ASC)
    return [(m.role.value, m.content.text, m.content.is_error) for m in page.items]


def say(v1: V1, thread_id: Any, text: str) -> Any:
    return v1.api(ksapi.ThreadsApi).send_user_message(thread_id, ksapi.UserMessageRequest(input_text=text))


def test_the_thread_of_a_run_with_a_pause_tells_its_story_and_is_read_only_while_it_runs(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = scheduled(v1, live_api, tenant.key, root, gated_graph())
    run = started(v1, d, "please ship")
    assert run.run_thread_id is not None
    with raw(live_api, tenant.key) as http:
        poll(lambda: http.get(f"/run/{run.id}/").json()["status"], lambda s: s == "PAUSED")
        with pytest.raises(ConflictException) as busy:
            say(v1, run.run_thread_id, "hello?")
        assert "run_in_progress" in (busy.value.body or "")
        resp = http.post(
            f"/wf/process_pause_action/{run.id}/",
            json={"inputs": {}, "user_id": "alice", "action": "APPROVE", "comments": "go"},
        )
        assert resp.status_code == 200, resp.text
    settled(v1, run.id, "COMPLETED")
    told = story(v1, run.run_thread_id)
    assert told[:3] == [
        ("USER", "please ship", None),
        ("ASSISTANT", "Ship it?", None),
        ("USER", "APPROVE go", None),
    ]
    role, text, _ = told[3]
    assert role == "ASSISTANT" and json.loads(text)["output_node"] == {"message": "please ship"}

    threads = v1.api(ksapi.ThreadsApi)
    thread = threads.get_thread(run.run_thread_id)
    assert thread.owner is not None and thread.owner.user_id == tenant.user_id
    for parent in (run.path_part_id, run.discussions.path_part_id):
        assert [t.id for t in threads.list_threads(parent_path_part_id=parent).items] == [thread.id]
    newest = v1.api(ksapi.ThreadMessagesApi).list_thread_messages(run.run_thread_id, limit=1).items[0]
    assert newest.sequence == 4
    again = v1.api(ksapi.ThreadMessagesApi).get_thread_message(run.run_thread_id, newest.id)
    assert again.content.text == text


def test_the_thread_of_a_failed_run_ends_with_its_error(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = scheduled(v1, live_api, tenant.key, root, v1_graph("raise ValueError('boom')"))
    run = started(v1, d, "try")
    failed = settled(v1, run.id, "FAILED")
    told = story(v1, run.run_thread_id)
    assert told[0] == ("USER", "try", None)
    assert told[-1][0] == "ASSISTANT" and told[-1][2] is True
    assert "boom" in told[-1][1] and told[-1][1] == failed.error


def test_a_stopped_run_unbricks_its_thread_and_a_follow_up_sees_the_history(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    d = scheduled(v1, live_api, tenant.key, root, v1_graph(SLEEP.format(secs=30)))
    run = started(v1, d, "slow one")
    with pytest.raises(ConflictException):
        say(v1, run.run_thread_id, "are you there?")
    v1.runs.stop_workflow_run(run.id)
    assert story(v1, run.run_thread_id)[-1] == ("ASSISTANT", "Stopped by user", True)

    set_graph(live_api, tenant.key, d.id, history_graph())
    sent = say(v1, run.run_thread_id, "second try")
    runs = v1.defs.list_workflow_runs(d.id).items
    follow_up = next(r for r in runs if r.id != run.id)
    assert sent.workflow_id == f"run-{follow_up.id}"
    assert follow_up.run_thread_id == run.run_thread_id
    settled(v1, follow_up.id, "COMPLETED")
    told = story(v1, run.run_thread_id)
    assert [(role, text) for role, text, _ in told[2:3]] == [("USER", "second try")]
    assert (
        sent.user_message_id
        == v1.api(ksapi.ThreadMessagesApi)
        .list_thread_messages(run.run_thread_id, role=ksapi.MessageRole.USER, limit=1)
        .items[0]
        .id
    )
    outputs = json.loads(told[-1][1])["output_node"]
    # The follow-up saw the first run's story: its message and its stop.
    assert outputs == {"turns": 2, "roles": "user,assistant", "first": "slow one"}


def test_another_tenant_gets_404_and_free_standing_threads_are_refused(
    v1: V1, root: uuid.UUID, live_api: str, other_tenant: Tenant
) -> None:
    d = new_definition(v1, root)
    run = started(v1, d, "mine")
    settled(v1, run.id, "COMPLETED")
    theirs = connect(live_api, other_tenant.key)
    with pytest.raises(NotFoundException):
        theirs.api(ksapi.ThreadsApi).get_thread(run.run_thread_id)
    with pytest.raises(NotFoundException):
        theirs.api(ksapi.ThreadMessagesApi).list_thread_messages(run.run_thread_id)
    with pytest.raises(NotFoundException):
        say(theirs, run.run_thread_id, "hijack")
    assert run.run_thread_id not in {t.id for t in theirs.api(ksapi.ThreadsApi).list_threads(limit=100).items}
    with pytest.raises(BadRequestException) as refused:
        v1.api(ksapi.ThreadsApi).create_thread(ksapi.CreateThreadRequest(title="chat"))
    assert "not supported" in (refused.value.body or "")


async def test_racing_user_messages_on_a_finished_thread_start_one_follow_up(
    v1: V1, root: uuid.UUID, live_api: str, tenant: Tenant
) -> None:
    # Runs that last a few seconds: a follow-up that finished at once would rightly let the next one in.
    d = scheduled(v1, live_api, tenant.key, root, v1_graph(SLEEP.format(secs=3)))
    run = started(v1, d, "first")
    settled(v1, run.id, "COMPLETED")
    url = f"/v1/threads/{run.run_thread_id}/user_message"
    async with httpx.AsyncClient(base_url=live_api, headers=tenant.headers, timeout=60) as http:
        replies = await asyncio.gather(*(http.post(url, json={"input_text": f"m{i}"}) for i in range(4)))
    codes = sorted(r.status_code for r in replies)
    assert codes == [202, 409, 409, 409], [r.text for r in replies]
    assert all("run_in_progress" in r.text for r in replies if r.status_code == 409)
    runs = v1.defs.list_workflow_runs(d.id).items
    assert len(runs) == 2 and {r.run_thread_id for r in runs} == {run.run_thread_id}
