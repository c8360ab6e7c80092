"""pauses: human-in-the-loop pauses, recorded when they open

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pauses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("input_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("pause_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timeout_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resume_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resume_user_id", sa.String(length=200), nullable=True),
        sa.Column("resume_action", sa.String(length=16), nullable=True),
        sa.Column("resume_inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq"),
    )
    op.create_index("ix_pauses_open", "pauses", ["run_id", "resume_time"])


def downgrade() -> None:
    op.drop_index("ix_pauses_open", table_name="pauses")
    op.drop_table("pauses")
