"""Indexes that keep list and summary reads flat as runs accumulate (issue 15): each list page is read
in its sort order from an index instead of sorting every run of the tenant.

- runs: the v1 list's default order (started, newest first) and the same per execution state, as
  expression indexes on exactly the SQL of `db/v1_repo.py` (`started_at_sql`, `execution_state_sql`);
  its COMPLETED_AT order; the paused page (tenant, status, start); runs awaiting approval; a covering
  index for the summary's window (read without touching the table); a definition's latest run.
- pauses: the open ones, for the /metrics gauges.

Plain CREATE INDEX (not CONCURRENTLY, which cannot run inside the migration's transaction): it locks
writes to the table while it builds, seconds per million runs.

Revision ID: 0011_scale
Revises: 0010_v1more
"""

from alembic import op

revision = "0011_scale"
down_revision = "0010_v1more"
branch_labels = None
depends_on = None

# Keep these two texts identical to what db/v1_repo.py renders; tests/db/test_list_plans.py checks
# that the list queries use the indexes built on them.
_STARTED = (
    "(CASE WHEN (draft_state IS NOT NULL OR (v1 IS true AND "
    "coalesce(jsonb_typeof(snapshot), 'null') = 'null')) THEN NULL ELSE start_time END)"
)
_STATE = (
    "(CASE WHEN (draft_state IS NOT NULL) THEN draft_state"
    " WHEN (status IN ('PENDING', 'RUNNING', 'PAUSED')) THEN 'IN_PROGRESS'"
    " WHEN (status IN ('COMPLETED')) THEN 'COMPLETED'"
    " WHEN (status IN ('FAILED', 'CANCELED')) THEN 'FAILED' END)"
)
_SUMMARY_COLUMNS = "status, draft_state, start_time, end_time, triggered_by, workflow_id"

_INDEXES = {
    "ix_runs_v1_started": f"runs (tenant_id, {_STARTED} DESC NULLS LAST, created_at DESC, id)",
    "ix_runs_v1_state_started": f"runs (tenant_id, {_STATE}, {_STARTED} DESC NULLS LAST, created_at DESC, id)",
    "ix_runs_v1_completed": "runs (tenant_id, end_time DESC NULLS LAST, created_at DESC, id)",
    "ix_runs_tenant_status_start": "runs (tenant_id, status, start_time)",
    "ix_runs_tenant_approval": "runs (tenant_id, approval_state, end_time)",
    "ix_runs_workflow_created": "runs (workflow_id, created_at)",
    "ix_pauses_open_since": "pauses (pause_time) WHERE resume_time IS NULL",
}


def upgrade() -> None:
    for name, target in _INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {target}")
    # The summary's window index now carries the columns it aggregates (an index-only scan).
    op.execute("DROP INDEX ix_runs_tenant_created")
    op.execute(f"CREATE INDEX ix_runs_tenant_created ON runs (tenant_id, created_at) INCLUDE ({_SUMMARY_COLUMNS})")


def downgrade() -> None:
    op.execute("DROP INDEX ix_runs_tenant_created")
    op.execute("CREATE INDEX ix_runs_tenant_created ON runs (tenant_id, created_at)")
    for name in reversed(_INDEXES):
        op.execute(f"DROP INDEX {name}")
