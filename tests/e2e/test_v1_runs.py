"""The v1 workflow-runs API driven by the unmodified ksapi 3.18.2 client against the real stack."""

from __future__ import annotations

import uuid

import pytest
from ksapi.exceptions import ConflictException

from tests.conftest import Tenant
from tests.e2e.v1_client import V1, connect, new_definition, root_folder, settled

pytestmark = pytest.mark.e2e


@pytest.fixture
def v1(live_api: str, tenant: Tenant) -> V1:
    return connect(live_api, tenant.key)


@pytest.fixture
def root(v1: V1) -> uuid.UUID:
    return root_folder(v1)


def test_default_graph_run_goes_from_draft_to_completed(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    assert run.execution_state.value == "NOT_STARTED"
    assert run.started_at is None and run.run_snapshot is None
    started = v1.runs.start_workflow_run(run.id)
    assert started.execution_state.value in ("IN_PROGRESS", "COMPLETED")
    done = settled(v1, run.id, "COMPLETED")
    assert done.completed_at is not None
    assert done.run_snapshot.workflow_name == d.name
    assert done.run_snapshot.max_run_duration_seconds == 1800
    assert done.approval_state.value == "not_required"


def test_start_is_idempotent_while_in_progress_and_conflicts_once_terminal(v1: V1, root: uuid.UUID) -> None:
    d = new_definition(v1, root)
    run = v1.defs.create_workflow_run(d.id)
    v1.runs.start_workflow_run(run.id)
    settled(v1, run.id, "COMPLETED")
    with pytest.raises(ConflictException):
        v1.runs.start_workflow_run(run.id)
