"""A partial index for the v1 summary's count of active definitions (issue 15): the tenant's inactive or
template definitions, so the count is the tenant's workflows (`ix_workflows_tenant_ids`) less these few
instead of a join of every workflow with its v1 fields.

Revision ID: 0013_summary
Revises: 0012_counts
"""

from alembic import op

revision = "0013_summary"
down_revision = "0012_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_v1_definitions_inactive ON v1_definitions (tenant_id) WHERE (NOT is_active) OR is_template"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_v1_definitions_inactive")
