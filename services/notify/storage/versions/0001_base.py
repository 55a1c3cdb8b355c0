"""notify: base schema (its projections and private tables arrive with their features).

Revision ID: notify_0001
Revises:
"""

from alembic import op

revision = "notify_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE IF NOT EXISTS projection_offsets (name text PRIMARY KEY, seq bigint NOT NULL)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS projection_offsets")
