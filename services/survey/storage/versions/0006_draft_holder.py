"""survey: a respondent's draft is kept under the session's credential holder too (decision 48).

A credential mailed to another address than the one it replaces gets a new holder, so whoever
redirected the mail logs in to an empty draft. Drafts from before are kept under the holder ''
that sessions from before carry; a new login starts a new draft.

Revision ID: survey_0006
Revises: survey_0005
"""

from alembic import op

revision = "survey_0006"
down_revision = "survey_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE survey_drafts ADD COLUMN holder text NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE survey_drafts DROP CONSTRAINT survey_drafts_pkey")
    op.execute("ALTER TABLE survey_drafts ADD PRIMARY KEY (campaign, pseudonym, holder)")


def downgrade() -> None:
    op.execute("DELETE FROM survey_drafts WHERE holder <> ''")
    op.execute("ALTER TABLE survey_drafts DROP CONSTRAINT survey_drafts_pkey")
    op.execute("ALTER TABLE survey_drafts DROP COLUMN holder")
    op.execute("ALTER TABLE survey_drafts ADD PRIMARY KEY (campaign, pseudonym)")
