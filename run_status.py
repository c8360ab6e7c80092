"""Run and task status enums and the legal run transitions; pure, shared by the database, workflows and API."""

from __future__ import annotations

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


TERMINAL: frozenset[RunStatus] = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})

# Which states a run may move *from* to reach a given state. Terminal states are sinks, so the
# first terminal write wins and every later one is a no-op.
ALLOWED_FROM: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset(),
    RunStatus.RUNNING: frozenset({RunStatus.PENDING, RunStatus.PAUSED}),
    RunStatus.PAUSED: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
    RunStatus.COMPLETED: frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED}),
    RunStatus.FAILED: frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED}),
    RunStatus.CANCELED: frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED}),
}

# retry/resume (v1) re-arm a FAILED or stopped run for a new attempt; nothing else leaves a terminal state.
RETRYABLE_FROM: frozenset[RunStatus] = frozenset({RunStatus.FAILED, RunStatus.CANCELED})


def is_terminal(status: RunStatus | str) -> bool:
    return RunStatus(status) in TERMINAL


class PauseAction(StrEnum):
    APPROVE = "APPROVE"
    DECLINE = "DECLINE"
    OVERRIDE = "OVERRIDE"
