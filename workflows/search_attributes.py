"""Search attributes operators filter runs by in the Temporal UI (registered on the server), and the
Temporal workflow id of a run.

An execution's search attributes can only be changed by the execution itself (a workflow command), so
the status one is kept by workflow code, not by `db.run_state.set_run_state`: `publish_status` is the
workflow side's after-transition hook, called where the run's execution enters a status.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from run_status import RunStatus

RUN_ID = SearchAttributeKey.for_keyword("PySpurRunId")
WORKFLOW_ID = SearchAttributeKey.for_keyword("PySpurWorkflowId")
STATUS = SearchAttributeKey.for_keyword("PySpurStatus")
# Set once when the API or the worker starts an execution (never upserted by workflow code).
TENANT_ID = SearchAttributeKey.for_keyword("PySpurTenantId")
RUN_TYPE = SearchAttributeKey.for_keyword("PySpurRunType")

ALL = (RUN_ID, WORKFLOW_ID, STATUS, TENANT_ID, RUN_TYPE)


def temporal_workflow_id(run_id: str) -> str:
    """The Temporal workflow id of a run: derived, so a retried start finds the same execution."""
    return f"run-{run_id}"


def of_new_run(run_id: str, workflow_id: str) -> TypedSearchAttributes:
    """The search attributes a run's execution starts with (its status PENDING)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(RUN_ID, run_id),
            SearchAttributePair(WORKFLOW_ID, workflow_id),
            SearchAttributePair(STATUS, RunStatus.PENDING.value),
        ]
    )


def publish_status(status: RunStatus) -> None:
    """Show the status the running execution enters (one upsert command; workflow code only)."""
    workflow.upsert_search_attributes([STATUS.value_set(status.value)])
