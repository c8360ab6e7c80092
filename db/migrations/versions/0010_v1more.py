"""v1 schedules (cadence, first occurrence, timezone on the definition; the tenant's default timezone) and
tags (per-tenant tags attached to path parts: folders, definitions, runs, documents), and run threads
(which runs make up each thread)

Revision ID: 0010_v1more
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_v1more"
down_revision = "0008_llm"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.add_column(
        "tenants", sa.Column("timezone", sa.String(64), nullable=False, server_default=sa.text("'UTC'"))
    )
    op.add_column("v1_definitions", sa.Column("schedule_cadence", sa.String(16), nullable=True))
    op.add_column("v1_definitions", sa.Column("schedule_start_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("v1_definitions", sa.Column("schedule_timezone", sa.String(64), nullable=True))
    op.create_check_constraint(
        "ck_v1_definitions_schedule_cadence",
        "v1_definitions",
        "schedule_cadence IS NULL OR schedule_cadence IN ('DAILY', 'WEEKLY', 'MONTHLY')",
    )
    op.create_table(
        "v1_tags",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("color", sa.String(6), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_table(
        "v1_path_part_tags",
        sa.Column("path_part_id", sa.Uuid(), primary_key=True),
        sa.Column("tag_id", sa.Uuid(), sa.ForeignKey("v1_tags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_index("ix_v1_path_part_tags_tag", "v1_path_part_tags", ["tag_id"])
    op.create_table(
        "v1_thread_runs",
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_index("ix_v1_thread_runs_thread", "v1_thread_runs", ["thread_id"])


def downgrade() -> None:
    op.drop_index("ix_v1_thread_runs_thread", "v1_thread_runs")
    op.drop_table("v1_thread_runs")
    op.drop_index("ix_v1_path_part_tags_tag", "v1_path_part_tags")
    op.drop_table("v1_path_part_tags")
    op.drop_table("v1_tags")
    op.drop_constraint("ck_v1_definitions_schedule_cadence", "v1_definitions")
    for column in ("schedule_timezone", "schedule_start_at", "schedule_cadence"):
        op.drop_column("v1_definitions", column)
    op.drop_column("tenants", "timezone")
