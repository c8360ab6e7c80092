"""Run state: CHECK constraints on every state column, and the run_state_history table

Revision ID: 0007
Revises: 0006

The value lists are spelled out (not imported from run_status): a migration keeps meaning what it
meant when it ran; a new state needs a new migration. Rows written by earlier code hold only these
values, so the constraints are added validated.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_RUN = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "PAUSED", "CANCELED")
_TASK = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELED", "PAUSED")
_APPROVAL = ("not_required", "pending", "approved")
_CHECKS = [
    # table, column, values, nullable
    ("runs", "status", _RUN, False),
    ("runs", "draft_state", ("NOT_STARTED", "PENDING"), True),
    ("runs", "approval_state", _APPROVAL, False),
    ("tasks", "status", _TASK, False),
    ("documents", "origin", ("SOURCE", "GENERATED"), False),
    ("documents", "ingest_status", ("PENDING", "COMPLETED", "FAILED"), False),
    ("documents", "approval_state", _APPROVAL, False),
]


def _rule(column: str, values: tuple[str, ...], nullable: bool) -> str:
    rule = f"{column} IN ({', '.join(repr(v) for v in values)})"
    return f"{column} IS NULL OR {rule}" if nullable else rule


def upgrade() -> None:
    for table, column, values, nullable in _CHECKS:
        op.create_check_constraint(f"ck_{table}_{column}", table, _rule(column, values, nullable))
    op.create_table(
        "run_state_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("axis", sa.String(length=16), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("cause", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(_rule("axis", ("status", "draft_state", "approval_state"), False), name="ck_run_state_history_axis"),
    )
    op.create_index("ix_run_state_history_run", "run_state_history", ["run_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_run_state_history_run", table_name="run_state_history")
    op.drop_table("run_state_history")
    for table, column, _, _ in reversed(_CHECKS):
        op.drop_constraint(f"ck_{table}_{column}", table, type_="check")
