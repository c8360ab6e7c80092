"""v1 workflow-runs API: folders, documents, v1 definition fields and v1 run fields

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSONB = postgresql.JSONB(astext_type=sa.Text())
_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("path_part_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("parent_path_part_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("materialized_path", sa.Text(), nullable=False),
        sa.Column("system_managed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path_part_id"),
    )
    op.create_index("ix_folders_parent", "folders", ["tenant_id", "parent_path_part_id"])
    op.create_index("ix_folders_run", "folders", ["run_id"])
    op.create_index(
        "uq_folders_root",
        "folders",
        ["tenant_id"],
        unique=True,
        postgresql_where=sa.text("parent_path_part_id IS NULL"),
    )
    op.create_index(
        "uq_folders_sibling_name",
        "folders",
        ["parent_path_part_id", "name"],
        unique=True,
        postgresql_where=sa.text("parent_path_part_id IS NOT NULL"),
    )

    op.create_table(
        "documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("path_part_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("version_path_part_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("parent_path_part_id", sa.Uuid(), nullable=False),
        sa.Column("materialized_path", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("ingest_status", sa.String(length=16), nullable=False),
        sa.Column("ingest_error", sa.Text(), nullable=True),
        sa.Column("ingest_workflow_id", sa.String(length=200), nullable=True),
        sa.Column("approval_state", sa.String(length=16), nullable=False, server_default="not_required"),
        sa.Column("uploaded_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path_part_id"),
        sa.UniqueConstraint("version_path_part_id"),
    )
    op.create_index("ix_documents_parent", "documents", ["parent_path_part_id"])
    op.create_index("ix_documents_run", "documents", ["run_id"])

    op.create_table(
        "v1_definitions",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("path_part_id", sa.Uuid(), nullable=False),
        sa.Column("parent_path_part_id", sa.Uuid(), nullable=False),
        sa.Column("instruction_path_part_id", sa.Uuid(), nullable=False),
        sa.Column("max_run_duration_seconds", sa.Integer(), nullable=False, server_default="1800"),
        sa.Column("approval_required", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("is_template", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_from_id", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("selected_skill_ids", _JSONB, nullable=True),
        sa.Column("common_file_path_part_ids", _JSONB, nullable=True),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("workflow_id"),
        sa.UniqueConstraint("path_part_id"),
    )

    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("runs") as b:
        b.add_column(sa.Column("v1", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("name", sa.String(length=255), nullable=True))
        b.add_column(sa.Column("path_part_id", sa.Uuid(), nullable=True))
        b.add_column(sa.Column("draft_state", sa.String(length=16), nullable=True))
        b.add_column(sa.Column("auto_start", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("auto_start_user_message", sa.Text(), nullable=True))
        b.add_column(sa.Column("input_scope", _JSONB, nullable=True))
        b.add_column(sa.Column("selected_skill_ids", _JSONB, nullable=True))
        b.add_column(sa.Column("snapshot", _JSONB, nullable=True))
        b.add_column(
            sa.Column("approval_state", sa.String(length=16), nullable=False, server_default="not_required")
        )
        b.add_column(sa.Column("approval_reason", sa.Text(), nullable=True))
        b.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        b.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        b.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW))
        b.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW))
    # Runs that predate v1: created when they started, last changed when they ended (else started).
    op.execute("UPDATE runs SET created_at = start_time, updated_at = coalesce(end_time, start_time)")
    op.create_index(
        "uq_runs_definition_name",
        "runs",
        ["workflow_id", "name"],
        unique=True,
        postgresql_where=sa.text("name IS NOT NULL"),
    )
    op.create_index(
        "uq_runs_idempotency_key",
        "runs",
        ["workflow_id", "triggered_by", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index("ix_runs_tenant_created", "runs", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_tenant_created", table_name="runs")
    op.drop_index("uq_runs_idempotency_key", table_name="runs")
    op.drop_index("uq_runs_definition_name", table_name="runs")
    with op.batch_alter_table("runs") as b:
        for col in (
            "updated_at", "created_at", "attempt", "idempotency_key", "approved_at", "approval_reason",
            "approval_state", "snapshot", "selected_skill_ids", "input_scope", "auto_start_user_message",
            "auto_start", "draft_state", "path_part_id", "name", "v1",
        ):
            b.drop_column(col)
    op.drop_column("api_keys", "expires_at")
    op.drop_table("v1_definitions")
    op.drop_table("documents")
    op.drop_table("folders")
