"""scoring: the admin's publication of the frozen results (docs/architecture.md, decision 16).

Revision ID: scoring_0003
Revises: scoring_0002
"""

from alembic import op

revision = "scoring_0003"
down_revision = "scoring_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE scoring_released (
            campaign_id text PRIMARY KEY,
            digest text NOT NULL,
            released_by text NOT NULL,
            released_on date NOT NULL,
            seq bigint NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE scoring_released")
