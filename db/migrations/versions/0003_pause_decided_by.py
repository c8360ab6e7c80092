"""pauses.decided_by: the authenticated user behind a decision (user_id in the body is the caller's word)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pauses", sa.Column("decided_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("pauses", "decided_by")
