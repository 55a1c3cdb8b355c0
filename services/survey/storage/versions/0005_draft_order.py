"""survey: drafts kept in the order they were made, not by day.

`created_on` holds the day only, so every draft of one day tied, and pruning to the newest 200
(`ORDER BY created_on DESC, id`) broke the tie by the random id: past 200 drafts in a day a
draft just uploaded could be deleted at once, and its preview and "Công bố" answered 404. A
sequence number orders them.

Revision ID: survey_0005
Revises: survey_0004
"""

from alembic import op

revision = "survey_0005"
down_revision = "survey_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE survey_campaign_drafts ADD COLUMN made bigserial")


def downgrade() -> None:
    op.execute("ALTER TABLE survey_campaign_drafts DROP COLUMN IF EXISTS made")
