"""runs.updated_at follows every change of a run, engine transitions included (a trigger)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "updated_at" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("runs")}:
        raise RuntimeError("runs.updated_at is missing; migration 0005 adds it")
    # clock_timestamp(), not now(): now() is when the transaction began, which may precede times the
    # same write stores (end_time from the writer's clock), so updated_at could read before
    # completed_at. `greatest`: a later value the writer set itself stands; updated_at never goes back.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION runs_touch_updated_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := greatest(clock_timestamp(), NEW.updated_at);
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER runs_touch_updated_at
        BEFORE UPDATE ON runs
        FOR EACH ROW EXECUTE FUNCTION runs_touch_updated_at()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS runs_touch_updated_at ON runs")
    op.execute("DROP FUNCTION IF EXISTS runs_touch_updated_at()")
