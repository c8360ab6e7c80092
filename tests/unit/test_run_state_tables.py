"""The state module's tables: complete, consistent, and the only source the wire and SQL views use."""

from __future__ import annotations

from typing import get_args

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from temporalio.client import WorkflowExecutionStatus

from api.v1 import schemas as v1_schemas
from db import run_state, v1_repo
from run_status import (
    AFTER,
    ALLOWED_FROM,
    CLOSED_EXECUTION,
    RETRYABLE_FROM,
    TERMINAL,
    V1_OPERATIONS,
    ApprovalState,
    ExecutionState,
    Hook,
    RunStatus,
    V1Operation,
    Verdict,
    v1_rule,
)


def test_terminal_states_are_left_only_by_a_rearm() -> None:
    for to, allowed in ALLOWED_FROM.items():
        assert not allowed & TERMINAL, to
    assert RETRYABLE_FROM <= TERMINAL


def test_the_operation_table_answers_every_operation_in_every_state() -> None:
    assert set(V1_OPERATIONS) == set(V1Operation)
    for operation, rules in V1_OPERATIONS.items():
        assert set(rules) == set(ExecutionState), operation
        for state, rule in rules.items():
            assert (rule.verdict == Verdict.REFUSED) == bool(rule.message), (operation, state)


@pytest.mark.parametrize(
    "operation, state, verdict",
    [
        (V1Operation.START, ExecutionState.NOT_STARTED, Verdict.ACT),
        (V1Operation.START, ExecutionState.IN_PROGRESS, Verdict.UNCHANGED),
        (V1Operation.START, ExecutionState.PENDING, Verdict.REFUSED),
        (V1Operation.STOP, ExecutionState.COMPLETED, Verdict.UNCHANGED),
        (V1Operation.RETRY, ExecutionState.COMPLETED, Verdict.REFUSED),
        (V1Operation.CALLBACK, ExecutionState.FAILED, Verdict.UNCHANGED),
        (V1Operation.CALLBACK, ExecutionState.NOT_STARTED, Verdict.REFUSED),
        (V1Operation.EDIT, ExecutionState.PENDING, Verdict.ACT),
    ],
)
def test_operation_verdicts_follow_ksapi(
    operation: V1Operation, state: ExecutionState, verdict: Verdict
) -> None:
    assert v1_rule(operation, state).verdict == verdict


def test_a_refusal_names_the_runs_state() -> None:
    rule = v1_rule(V1Operation.APPROVE, ExecutionState.FAILED)
    assert rule.explain(ExecutionState.FAILED) == "The run is FAILED; only COMPLETED runs can be approved"


def test_the_wire_literals_are_the_state_enums() -> None:
    assert get_args(v1_schemas.ExecutionState) == tuple(s.value for s in ExecutionState)
    assert get_args(v1_schemas.ApprovalState) == tuple(s.value for s in ApprovalState)


def test_the_sql_view_maps_every_status_as_the_python_view_does() -> None:
    sql = str(
        select(v1_repo.execution_state_sql()).compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
    )
    for status in RunStatus:
        view = v1_repo.execution_state(status, None)
        branch = next(b for b in sql.split("WHEN")[2:] if f"'{status.value}'" in b)
        assert f"THEN '{view.value}'" in branch, status


def test_every_hook_in_the_table_has_an_implementation() -> None:
    used = {h for hooks in AFTER.values() for h in hooks}
    assert used == set(Hook)
    assert used - set(run_state.SQL_HOOKS) == {Hook.V1_OUTPUT_DOCUMENTS}  # the one that needs Python


def test_the_reconciler_map_names_real_execution_statuses() -> None:
    assert set(CLOSED_EXECUTION) <= {s.name for s in WorkflowExecutionStatus}
    assert {s for s, _ in CLOSED_EXECUTION.values()} <= TERMINAL
