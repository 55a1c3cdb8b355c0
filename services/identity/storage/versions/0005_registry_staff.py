"""identity: disabled staff accounts, delivery state and reminder days (decision 34).

`invited`/`delivery_failed` follow notify's delivery events; `identity_reminders` keeps the UTC
day of the last reminder asked for each person (decision 15: the day only). Events before this
revision are not replayed: existing rows start as not invited until their next delivery event.

Revision ID: identity_0005
Revises: identity_0004
"""

from alembic import op

revision = "identity_0005"
down_revision = "identity_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE identity_users ADD COLUMN disabled boolean NOT NULL DEFAULT false")
    op.execute(
        "ALTER TABLE identity_respondents ADD COLUMN invited boolean NOT NULL DEFAULT false, "
        "ADD COLUMN delivery_failed boolean NOT NULL DEFAULT false"
    )
    op.execute(
        "CREATE TABLE identity_reminders (campaign text NOT NULL, respondent_id text NOT NULL, "
        "requested_on date NOT NULL, PRIMARY KEY (campaign, respondent_id))"
    )


def downgrade() -> None:
    op.execute("DROP TABLE identity_reminders")
    op.execute("ALTER TABLE identity_respondents DROP COLUMN invited, DROP COLUMN delivery_failed")
    op.execute("ALTER TABLE identity_users DROP COLUMN disabled")
