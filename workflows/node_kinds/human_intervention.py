"""HumanInterventionNode: pauses its downstream until a person decides (the `decide` update), or its
timeout acts for them."""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from run_status import PauseAction, RunStatus
from telemetry import in_workflow
from workflows.contracts import (
    Decision,
    PauseRecord,
    RecordDecisionInput,
    RecordPauseInput,
    RunActivitiesContract,
)
from workflows.node_configs import HumanInterventionNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, Pause, RunScope, object_schema
from workflows.search_attributes import publish_status

if TYPE_CHECKING:
    from workflows.graph import RunState


class HumanInterventionHandler(NodeHandler[HumanInterventionNodeConfig]):
    node_type = "HumanInterventionNode"
    display_name = "HumanIntervention"
    # PySpur registers this one by decorator, which lands it after the statically listed Logic nodes.
    group = "Logic"
    kind = NodeKind.CONTROL
    config_model = HumanInterventionNodeConfig
    acronym = "HIN"
    color = "#6610F2"
    input_schema = object_schema(
        "HumanInterventionNodeInput", "Input model for the human intervention node.", open_=True
    )
    output_schema = object_schema("HumanInterventionNodeOutput", open_=True)
    pauses = True

    def start(
        self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]
    ) -> Coroutine[Any, Any, NodeOutput]:
        # Paused here, before any progress snapshot is taken, so every write agrees.
        pause = run.open_pause(node_id)
        state.pause(node_id, dict(inputs), workflow.now())
        return self._wait(run, state, pause, dict(inputs))

    async def _wait(
        self, run: RunScope, state: RunState, pause: Pause, passthrough: dict[str, Any]
    ) -> NodeOutput:
        """Wait for the decision, apply it to the node, and record both ends of the pause.

        Raises:
            ApplicationError: the pause timed out and the node's `on_timeout` is "fail".
        """
        node = state.plan.by_id[pause.node_id]
        config = self.config(node)
        timeout = config.timeout_seconds
        await wait_for_decision(run, pause, config.message, passthrough, timeout, f"pause {node.title}")
        now = workflow.now()
        decision, failure = _decision_or_failure(pause.decision, config)
        in_workflow.event_span(
            "pause decided" if decision else "pause timed out",
            {"node.id": pause.node_id, "pause.action": decision.action.value if decision else "TIMEOUT"},
        )
        output: dict[str, Any] = {}
        if failure is not None:
            state.fail(pause.node_id, failure, now)
        elif decision is not None:
            output = _apply(state, pause.node_id, passthrough, decision, config.continue_on_decline, now)
        if state.run_status() == RunStatus.RUNNING:
            publish_status(RunStatus.RUNNING)
        await run.write(
            RunActivitiesContract.record_decision,
            RecordDecisionInput(
                run_id=run.inp.run_id,
                attempt=run.inp.attempt,
                seq=pause.seq,
                action=decision.action if decision else None,
                user_id=decision.user_id if decision else None,
                comments=decision.comments if decision else failure,
                inputs=decision.inputs if decision else None,
                decided_by=decision.decided_by if decision else None,
                resume_time=now,
                tasks=run.unflushed(),
                still_paused=bool(state.paused()),
            ),
            f"decision {node.title}",
        )
        pause.recorded = True
        if failure is not None:
            raise ApplicationError(failure, type="pause_timeout", non_retryable=True)
        return output


def _decision_or_failure(
    decision: Decision | None, config: HumanInterventionNodeConfig
) -> tuple[Decision | None, str | None]:
    """The person's decision, or the one the node's `on_timeout` takes for them, or (on_timeout
    "fail") the failure text."""
    if decision is not None:
        return decision, None
    timeout = config.timeout_seconds
    if config.on_timeout == "fail":
        return None, f"No decision within {timeout} s (on_timeout: fail)"
    action = PauseAction.APPROVE if config.on_timeout == "approve" else PauseAction.DECLINE
    return Decision(action=action, user_id="timeout", comments=f"No decision within {timeout} s"), None


def _apply(
    state: RunState,
    node_id: str,
    passthrough: dict[str, Any],
    decision: Decision,
    continue_on_decline: bool,
    now: datetime,
) -> NodeOutput:
    if decision.action == PauseAction.OVERRIDE:
        output = dict(decision.inputs)
    elif decision.action == PauseAction.APPROVE:
        output = {**passthrough, **decision.inputs}
    elif continue_on_decline:
        output = {**passthrough, **decision.inputs, "approved": False}
    else:
        reason = f"Declined by {decision.user_id}" + (f": {decision.comments}" if decision.comments else "")
        state.decline(node_id, reason, now)
        return {}
    state.complete(node_id, output, now)
    return output


async def wait_for_decision(
    run: RunScope,
    pause: Pause,
    message: str,
    input_data: dict[str, Any],
    timeout_seconds: float | None,
    summary: str,
) -> Decision | None:
    """The one pause mechanism (a HumanInterventionNode, an agent's tool awaiting approval): record the
    open pause, wait for a person's decision or the timeout, close it. None when the timeout decided."""
    now = workflow.now()
    publish_status(RunStatus.PAUSED)
    await run.write(
        RunActivitiesContract.record_pause,
        RecordPauseInput(
            run_id=run.inp.run_id,
            attempt=run.inp.attempt,
            pause=PauseRecord(
                node_id=pause.node_id,
                seq=pause.seq,
                message=message,
                input_data=input_data,
                pause_time=now,
                timeout_at=now + timedelta(seconds=timeout_seconds) if timeout_seconds else None,
            ),
            tasks=run.unflushed(),
        ),
        summary,
    )
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(lambda: pause.decision is not None, timeout=timeout_seconds)
    run.close_pause(pause.node_id)
    return pause.decision
