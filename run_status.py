"""Every run-state axis, the legal transitions, what follows a transition, and the v1 view of it all.

Pure data, shared by the database, workflows and API: `db/run_state.py` applies it (guarded writes,
history rows, after-transition hooks), the migrations turn the enums into CHECK constraints, and the
v1 surface reads its execution state and its operation-by-state table from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    PAUSED = "PAUSED"
    CANCELED = "CANCELED"


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    PAUSED = "PAUSED"


class DraftState(StrEnum):
    """A v1 run that has not started (its `status` is PENDING meanwhile); null once dispatched."""

    NOT_STARTED = "NOT_STARTED"
    PENDING = "PENDING"  # an upload is still being ingested


class ApprovalState(StrEnum):
    """Of a v1 run and of its output documents (lower case on the wire, as ksapi spells it)."""

    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    APPROVED = "approved"


class IngestStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class DocumentOrigin(StrEnum):
    SOURCE = "SOURCE"  # uploaded
    GENERATED = "GENERATED"  # a run's output


class StateAxis(StrEnum):
    """The run columns whose changes are recorded in `run_state_history`."""

    STATUS = "status"
    DRAFT_STATE = "draft_state"
    APPROVAL_STATE = "approval_state"


class Cause(StrEnum):
    """Who moved a run when no user did (a user's move is recorded under their id)."""

    ENGINE = "engine"
    RECONCILER = "reconciler"
    SCHEDULE = "schedule"


TERMINAL: frozenset[RunStatus] = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
UNFINISHED: frozenset[RunStatus] = frozenset(RunStatus) - TERMINAL

# Which states a run may move *from* to reach a given state. Terminal states are sinks, so the
# first terminal write wins and every later one is a no-op.
ALLOWED_FROM: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset(),
    RunStatus.RUNNING: frozenset({RunStatus.PENDING, RunStatus.PAUSED}),
    RunStatus.PAUSED: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
    RunStatus.COMPLETED: UNFINISHED,
    RunStatus.FAILED: UNFINISHED,
    RunStatus.CANCELED: UNFINISHED,
}

# retry/resume (v1) re-arm a FAILED or stopped run for a new attempt; nothing else leaves a terminal state.
RETRYABLE_FROM: frozenset[RunStatus] = frozenset({RunStatus.FAILED, RunStatus.CANCELED})


class Hook(StrEnum):
    """Named after-transition hooks, run in the transaction (mostly the statement) of the write."""

    CANCEL_UNSETTLED_TASKS = "cancel_unsettled_tasks"
    CLOSE_OPEN_PAUSES = "close_open_pauses"
    V1_OUTPUT_DOCUMENTS = "v1_output_documents"  # v1 runs only: OutputNode results, approval pending
    V1_APPROVE_DOCUMENTS = "v1_approve_documents"  # the run's output documents follow its approval
    DROP_LAST_ATTEMPT = "drop_last_attempt"  # re-armed: tasks, pauses and outputs of the last attempt go


_ENDED = (Hook.CANCEL_UNSETTLED_TASKS, Hook.CLOSE_OPEN_PAUSES)
AFTER: dict[tuple[StateAxis, str], tuple[Hook, ...]] = {
    # Only a re-arm (retry/resume, from RETRYABLE_FROM) moves a run back to PENDING.
    (StateAxis.STATUS, RunStatus.PENDING): (Hook.DROP_LAST_ATTEMPT,),
    (StateAxis.STATUS, RunStatus.COMPLETED): (*_ENDED, Hook.V1_OUTPUT_DOCUMENTS),
    (StateAxis.STATUS, RunStatus.FAILED): _ENDED,
    (StateAxis.STATUS, RunStatus.CANCELED): _ENDED,
    (StateAxis.APPROVAL_STATE, ApprovalState.APPROVED): (Hook.V1_APPROVE_DOCUMENTS,),
}


# The reconciler's verdict on a run whose Temporal execution closed without writing it, by the
# execution's status (temporalio's WorkflowExecutionStatus names; this module imports no SDK).
CLOSED_EXECUTION: dict[str, tuple[RunStatus, str]] = {
    "TERMINATED": (RunStatus.CANCELED, "Terminated in Temporal"),
    "TIMED_OUT": (RunStatus.FAILED, "Run exceeded its maximum duration (Temporal execution timed out)"),
    "CANCELED": (RunStatus.CANCELED, "Run canceled"),
    "FAILED": (RunStatus.FAILED, "Run failed"),
    "CONTINUED_AS_NEW": (RunStatus.FAILED, "Unexpected continue-as-new"),
}


def is_terminal(status: RunStatus | str) -> bool:
    return RunStatus(status) in TERMINAL


def hooks_after(axis: StateAxis, to: str | None) -> tuple[Hook, ...]:
    return AFTER.get((axis, to or ""), ())


# -- the v1 view (product.md, "One run model, two views") -------------------------------------------------


class ExecutionState(StrEnum):
    PENDING = "PENDING"
    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


# A draft shows its draft state; otherwise the stored status decides.
EXECUTION_VIEW: dict[RunStatus, ExecutionState] = {
    RunStatus.PENDING: ExecutionState.IN_PROGRESS,
    RunStatus.RUNNING: ExecutionState.IN_PROGRESS,
    RunStatus.PAUSED: ExecutionState.IN_PROGRESS,
    RunStatus.COMPLETED: ExecutionState.COMPLETED,
    RunStatus.FAILED: ExecutionState.FAILED,
    RunStatus.CANCELED: ExecutionState.FAILED,
}


def execution_state(status: str, draft_state: str | None) -> ExecutionState:
    return ExecutionState(draft_state) if draft_state else EXECUTION_VIEW[RunStatus(status)]


class V1Operation(StrEnum):
    START = "start"
    STOP = "stop"
    RETRY = "retry"  # and resume
    APPROVE = "approve"
    CALLBACK = "callback"
    EDIT = "edit"


class Verdict(StrEnum):
    ACT = "act"
    UNCHANGED = "unchanged"  # answered with the run as it is
    REFUSED = "refused"  # 409 with the rule's message


@dataclass(frozen=True)
class Rule:
    verdict: Verdict
    message: str = ""  # "{state}" is replaced by the run's execution state

    def explain(self, state: ExecutionState) -> str:
        return self.message.format(state=state.value)


_ACT, _SAME = Rule(Verdict.ACT), Rule(Verdict.UNCHANGED)


def _refuse(message: str) -> Rule:
    return Rule(Verdict.REFUSED, message)


_S = ExecutionState
_NOT_RESTARTABLE = _refuse(
    "The run is {state}; use retry or resume for a failed run, clone for a completed one"
)
_ONLY_FAILED = _refuse("The run is {state}; only FAILED runs can be retried or resumed")
_ONLY_COMPLETED = _refuse("The run is {state}; only COMPLETED runs can be approved")
_NOT_STARTED = _refuse("The run is {state}; it has not started")
_NOT_A_DRAFT = _refuse("The run is {state}; only NOT_STARTED or PENDING runs can be edited")

# ksapi 3.18.2's state-by-operation table.
V1_OPERATIONS: dict[V1Operation, dict[ExecutionState, Rule]] = {
    V1Operation.START: {
        _S.NOT_STARTED: _ACT,
        _S.PENDING: _refuse("The run's inputs are still being ingested"),
        _S.IN_PROGRESS: _SAME,
        _S.COMPLETED: _NOT_RESTARTABLE,
        _S.FAILED: _NOT_RESTARTABLE,
    },
    V1Operation.STOP: {state: _ACT if state == _S.IN_PROGRESS else _SAME for state in _S},
    V1Operation.RETRY: {state: _ACT if state == _S.FAILED else _ONLY_FAILED for state in _S},
    V1Operation.APPROVE: {state: _ACT if state == _S.COMPLETED else _ONLY_COMPLETED for state in _S},
    V1Operation.CALLBACK: {
        _S.NOT_STARTED: _NOT_STARTED,
        _S.PENDING: _NOT_STARTED,
        _S.IN_PROGRESS: _ACT,
        _S.COMPLETED: _SAME,
        _S.FAILED: _SAME,
    },
    V1Operation.EDIT: {
        state: _ACT if state in (_S.NOT_STARTED, _S.PENDING) else _NOT_A_DRAFT for state in _S
    },
}


def v1_rule(operation: V1Operation, state: ExecutionState) -> Rule:
    return V1_OPERATIONS[operation][state]


class PauseAction(StrEnum):
    APPROVE = "APPROVE"
    DECLINE = "DECLINE"
    OVERRIDE = "OVERRIDE"
