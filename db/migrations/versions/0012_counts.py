"""Indexes that keep the v1 definitions list and the summary's definition count cheap as workflows and
their runs accumulate (issue 15):

- workflows (tenant_id) INCLUDE (id): the tenant's workflow ids without reading the wide rows (each
  holds its graph), for the definitions list's check for workflows lacking v1 fields and the
  summary's count of active definitions (both were a sequential scan of every workflow).
- runs (workflow_id) WHERE approval_state = 'pending': a page of definitions counts its pending
  approvals from this instead of reading every run of those definitions.

Revision ID: 0012_counts
Revises: 0011_scale
"""

from alembic import op

revision = "0012_counts"
down_revision = "0011_scale"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_workflows_tenant_ids": "workflows (tenant_id) INCLUDE (id)",
    "ix_runs_workflow_pending": "runs (workflow_id) WHERE ((approval_state)::text = 'pending'::text)",
}


def upgrade() -> None:
    for name, target in _INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {target}")


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.execute(f"DROP INDEX {name}")
