"""survey: participation derived, not stored; ballot counts per rated unit.

Drops `survey_respondents.voted`: its updates, in the order ballots arrived, left a trail that
linked people to ballots on the stream (docs/architecture.md, decision 15). Ballot counts of
many-unit forms were kept under one blank unit; they are now counted per answered unit, as
scoring does, so the projection is rebuilt from the log (offset back to 0; the 0002 trigger
allows a reset to 0).

Revision ID: survey_0003
Revises: survey_0002
"""

from alembic import op

revision = "survey_0003"
down_revision = "survey_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE survey_respondents DROP COLUMN IF EXISTS voted")
    for table in (
        "survey_campaigns",
        "survey_respondents",
        "survey_waves_opened",
        "survey_deadlines",
        "survey_ballot_counts",
    ):
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE projection_offsets SET seq = 0 WHERE name = 'survey'")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE survey_respondents ADD COLUMN IF NOT EXISTS voted boolean "
        "NOT NULL DEFAULT false"
    )
