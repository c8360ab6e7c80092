"""HumanInterventionNode in `RunWorkflow`: the pause, the `decide` update, timeouts and cancel.

Pause timeouts are an hour long: the dev server skips the workflow's time, so they fire at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError, RPCStatusCode

from run_status import PauseAction, RunStatus, TaskStatus
from tests.builders import definition, input_node, link, node, output_node, python_node
from tests.conftest import wait_until
from tests.engine.conftest import Engine
from tests.engine.stubs import Decision, DecisionResult, TaskRecord

HOUR = 3600


def approval_graph(**config: Any) -> dict[str, Any]:
    """input -> approve (a person) -> after (Python, echoes what it got) -> output."""
    return definition(
        [
            input_node(),
            node("approve", "HumanInterventionNode", message="Check it", **config),
            python_node("after", "..."),
            output_node({"seen": "after.seen"}),
        ],
        [link("input_node", "approve"), link("approve", "after"), link("after", "output_node")],
    )


@pytest.fixture
def engine_echo(engine: Engine) -> Engine:
    engine.stubs.python = lambda node_id, inputs: {"seen": inputs["approve"]}
    return engine


async def paused(engine: Engine) -> None:
    async def recorded() -> bool:
        return len(engine.stubs.pauses) == 1

    await wait_until(recorded, within=10, interval=0.05)


async def test_human_step_pauses_its_downstream_and_records_the_pause(engine_echo: Engine) -> None:
    handle = await engine_echo.start(approval_graph(), {"x": 7})
    await paused(engine_echo)

    [pause] = engine_echo.stubs.pauses
    assert pause.pause.node_id == "approve"
    assert pause.pause.message == "Check it"
    assert pause.pause.input_data == {"input_node": {"x": 7}}
    assert pause.pause.timeout_at is None
    assert engine_echo.stubs.python_calls == []
    assert engine_echo.stubs.finalized == []
    tasks = {t.node_id: t.status for t in await handle.query("tasks", result_type=list[TaskRecord])}
    assert tasks["approve"] == TaskStatus.PAUSED
    assert tasks["after"] == TaskStatus.PENDING
    await handle.cancel()


@pytest.mark.parametrize(
    ("action", "status", "seen"),
    [
        (PauseAction.APPROVE, RunStatus.COMPLETED, {"input_node": {"x": 7}, "ok": True}),
        (PauseAction.OVERRIDE, RunStatus.COMPLETED, {"ok": True}),
        (PauseAction.DECLINE, RunStatus.CANCELED, None),
    ],
)
async def test_decide_update_resumes_the_run(
    engine_echo: Engine, action: PauseAction, status: RunStatus, seen: dict[str, Any] | None
) -> None:
    handle = await engine_echo.start(approval_graph(), {"x": 7})
    await paused(engine_echo)

    answer = await handle.execute_update(
        "decide",
        Decision(action=action, inputs={"ok": True}, user_id="u1", comments="fine"),
        result_type=DecisionResult,
    )
    result = await handle.result()

    assert answer == DecisionResult(node_id="approve", seq=1, action=action)
    assert result.status == status
    [decision] = engine_echo.stubs.decisions
    assert (decision.action, decision.user_id, decision.still_paused) == (action, "u1", False)
    if seen is None:
        assert result.error == "Declined by u1: fine"
        assert engine_echo.stubs.python_calls == []
    else:
        assert result.outputs["output_node"] == {"seen": seen}
    [final] = engine_echo.stubs.finalized
    assert final.status == status


async def test_decide_update_refuses_a_node_that_is_not_paused(engine_echo: Engine) -> None:
    handle = await engine_echo.start(approval_graph(), {"x": 7})
    await paused(engine_echo)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            "decide",
            Decision(action=PauseAction.APPROVE, user_id="u1", node_id="after"),
            result_type=DecisionResult,
        )
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.message == "Node 'after' is not paused"
    assert engine_echo.stubs.decisions == []
    await handle.cancel()


@pytest.mark.parametrize(
    ("on_timeout", "status", "after_ran"),
    [
        ("approve", RunStatus.COMPLETED, True),
        ("decline", RunStatus.CANCELED, False),
        ("fail", RunStatus.FAILED, False),
    ],
)
async def test_pause_timeout_acts_as_configured(
    engine_echo: Engine, on_timeout: str, status: RunStatus, after_ran: bool
) -> None:
    handle = await engine_echo.start(approval_graph(timeout_seconds=HOUR, on_timeout=on_timeout), {"x": 7})
    if status == RunStatus.FAILED:
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, ApplicationError)
        assert failure.value.cause.message == (
            f"Node 'approve' failed: No decision within {HOUR} s (on_timeout: fail)"
        )
    else:
        assert (await handle.result()).status == status

    [pause] = engine_echo.stubs.pauses
    assert pause.pause.timeout_at is not None
    assert (pause.pause.timeout_at - pause.pause.pause_time).total_seconds() == HOUR
    [decision] = engine_echo.stubs.decisions
    if on_timeout == "fail":
        assert decision.action is None
    else:
        assert (decision.action, decision.user_id) == (PauseAction(on_timeout.upper()), "timeout")
    assert bool(engine_echo.stubs.python_calls) == after_ran
    assert [f.status for f in engine_echo.stubs.finalized] == [status]


async def test_cancel_of_a_paused_run_cancels_its_open_nodes(engine_echo: Engine) -> None:
    handle = await engine_echo.start(approval_graph(), {"x": 7})
    await paused(engine_echo)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    [final] = engine_echo.stubs.finalized
    assert (final.status, final.error) == (RunStatus.CANCELED, "Run canceled")
    tasks = {t.node_id: t.status for t in final.tasks}
    assert tasks["approve"] == TaskStatus.CANCELED
    assert tasks["after"] == TaskStatus.CANCELED
    assert engine_echo.stubs.python_calls == []


async def test_decline_with_continue_on_decline_lets_the_graph_go_on(engine_echo: Engine) -> None:
    handle = await engine_echo.start(approval_graph(continue_on_decline=True), {"x": 7})
    await paused(engine_echo)
    await handle.execute_update(
        "decide", Decision(action=PauseAction.DECLINE, user_id="u1"), result_type=DecisionResult
    )
    result = await handle.result()

    assert result.status == RunStatus.COMPLETED
    assert result.outputs["output_node"] == {"seen": {"input_node": {"x": 7}, "approved": False}}


def two_pauses() -> dict[str, Any]:
    return definition(
        [
            input_node(),
            node("a", "HumanInterventionNode"),
            node("b", "HumanInterventionNode"),
            node("m", "MergeNode"),
        ],
        [link("input_node", "a"), link("input_node", "b"), link("a", "m"), link("b", "m")],
    )


async def both_paused(engine: Engine) -> None:
    async def recorded() -> bool:
        return len(engine.stubs.pauses) == 2

    await wait_until(recorded, within=10, interval=0.05)


async def test_parallel_pauses_are_each_answered_on_their_own(engine: Engine) -> None:
    handle = await engine.start(two_pauses(), {"x": 1})
    await both_paused(engine)
    assert [p.pause.seq for p in engine.stubs.pauses] == [1, 2]

    for node_id in ("a", "b"):
        await handle.execute_update(
            "decide",
            Decision(action=PauseAction.OVERRIDE, inputs={"from": node_id}, user_id="u1", node_id=node_id),
            result_type=DecisionResult,
        )
    result = await handle.result()

    # Only the last decision back moves the run out of PAUSED.
    assert [(d.seq, d.still_paused) for d in engine.stubs.decisions] == [(1, True), (2, False)]
    assert result.outputs["m"] == {"a": {"from": "a"}, "b": {"from": "b"}}


async def test_racing_decisions_on_one_pause_have_one_winner(engine_echo: Engine) -> None:
    handle = await engine_echo.start(approval_graph(), {"x": 7})
    await paused(engine_echo)

    answers = await asyncio.gather(
        *[
            handle.execute_update("decide", Decision(action=action, user_id=user), result_type=DecisionResult)
            for action, user in ((PauseAction.APPROVE, "ann"), (PauseAction.DECLINE, "bob"))
        ],
        return_exceptions=True,
    )
    result = await handle.result()

    won = [a for a in answers if isinstance(a, DecisionResult)]
    # The loser is refused by the workflow, or, when the run closed before the update reached it,
    # aborted with NOT_FOUND (which the API answers with 409 like a refusal).
    lost = [
        a
        for a in answers
        if isinstance(a, WorkflowUpdateFailedError)
        or (isinstance(a, RPCError) and a.status == RPCStatusCode.NOT_FOUND)
    ]
    assert (len(won), len(lost)) == (1, 1), answers
    assert [d.action for d in engine_echo.stubs.decisions] == [won[0].action]
    assert result.status == (
        RunStatus.COMPLETED if won[0].action == PauseAction.APPROVE else RunStatus.CANCELED
    )
    assert len(engine_echo.stubs.python_calls) == (1 if won[0].action == PauseAction.APPROVE else 0)


async def test_cancel_during_two_open_pauses_closes_both(engine: Engine) -> None:
    handle = await engine.start(two_pauses(), {"x": 1})
    await both_paused(engine)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    [final] = engine.stubs.finalized
    assert final.status == RunStatus.CANCELED
    tasks = {t.node_id: t.status for t in final.tasks}
    assert (tasks["a"], tasks["b"], tasks["m"]) == (TaskStatus.CANCELED,) * 3


async def test_a_cancel_whose_terminal_write_is_refused_still_ends_canceled(engine_echo: Engine) -> None:
    """The database refuses the canceled run's terminal write for its values: the run is written again
    without them, still CANCELED, and the execution closes canceled (no retry loop)."""
    engine_echo.stubs.refuse_finalize = 1
    handle = await engine_echo.start(approval_graph(), {"x": 7})
    await paused(engine_echo)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    refused, bare = engine_echo.stubs.finalized
    assert refused.status == bare.status == RunStatus.CANCELED
    assert bare.outputs == {} and all(t.inputs is None and t.outputs is None for t in bare.tasks)
