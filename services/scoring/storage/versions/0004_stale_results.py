"""scoring: campaigns whose results wait for the end of a catch-up (docs/architecture.md,
decision 43).

Revision ID: scoring_0004
Revises: scoring_0003
"""

from alembic import op

revision = "scoring_0004"
down_revision = "scoring_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE scoring_stale_results (campaign_id text PRIMARY KEY)")


def downgrade() -> None:
    op.execute("DROP TABLE scoring_stale_results")
