"""identity: the respondent's position ("chức vụ"), for the focal point's list (decision 37).

Registrations before this revision have no position until a list with a "Chức vụ" column is
imported again, which publishes RespondentUpdated with it.

Revision ID: identity_0006
Revises: identity_0005
"""

from alembic import op

revision = "identity_0006"
down_revision = "identity_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE identity_respondents ADD COLUMN position text")


def downgrade() -> None:
    op.execute("ALTER TABLE identity_respondents DROP COLUMN position")
