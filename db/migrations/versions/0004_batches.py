"""datasets, output files and batch progress; task scopes for loop iterations

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("columns", _JSONB, nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_table(
        "dataset_rows",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("data", _JSONB, nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "idx"),
    )
    op.create_table(
        "output_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_output_files_run_id", "output_files", ["run_id"])
    op.create_table(
        "output_lines",
        sa.Column("output_file_id", sa.Uuid(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("line", _JSONB, nullable=False),
        sa.ForeignKeyConstraint(["output_file_id"], ["output_files.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("output_file_id", "idx"),
    )
    op.create_foreign_key(
        "fk_runs_input_dataset", "runs", "datasets", ["input_dataset_id"], ["id"], ondelete="SET NULL"
    )
    op.create_foreign_key(
        "fk_runs_output_file", "runs", "output_files", ["output_file_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index("ix_runs_input_dataset", "runs", ["input_dataset_id"])
    for column in ("rows_total", "rows_done", "rows_failed"):
        op.add_column("runs", sa.Column(column, sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("scope", sa.String(length=500), server_default="", nullable=False))
    op.drop_constraint("tasks_run_id_node_id_key", "tasks", type_="unique")
    op.create_unique_constraint("tasks_run_id_scope_node_id_key", "tasks", ["run_id", "scope", "node_id"])


def downgrade() -> None:
    op.drop_constraint("tasks_run_id_scope_node_id_key", "tasks", type_="unique")
    op.execute("DELETE FROM tasks WHERE scope <> ''")
    op.create_unique_constraint("tasks_run_id_node_id_key", "tasks", ["run_id", "node_id"])
    op.drop_column("tasks", "scope")
    for column in ("rows_total", "rows_done", "rows_failed"):
        op.drop_column("runs", column)
    op.drop_index("ix_runs_input_dataset", table_name="runs")
    op.drop_constraint("fk_runs_output_file", "runs", type_="foreignkey")
    op.drop_constraint("fk_runs_input_dataset", "runs", type_="foreignkey")
    op.drop_table("output_lines")
    op.drop_index("ix_output_files_run_id", table_name="output_files")
    op.drop_table("output_files")
    op.drop_table("dataset_rows")
    op.drop_table("datasets")
