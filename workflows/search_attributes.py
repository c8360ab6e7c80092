"""Search attribute keys operators filter runs by in the Temporal UI (registered on the server)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

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
