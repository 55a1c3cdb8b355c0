"""survey: campaign drafts read from a workbook, kept until published (decision 38).

A draft is a validated Campaign not yet on the log: the preview page shows it and "Công bố"
publishes it. Nothing here is about respondents.

Revision ID: survey_0004
Revises: survey_0003
"""

from alembic import op

revision = "survey_0004"
down_revision = "survey_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """CREATE TABLE survey_campaign_drafts (
            id text PRIMARY KEY,
            campaign_id text NOT NULL,
            definition jsonb NOT NULL,
            source text NOT NULL,
            created_by text NOT NULL,
            created_on date NOT NULL DEFAULT CURRENT_DATE,
            published_version integer
        )"""
    )
    op.execute(
        "CREATE INDEX survey_campaign_drafts_campaign ON survey_campaign_drafts (campaign_id)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS survey_campaign_drafts")
