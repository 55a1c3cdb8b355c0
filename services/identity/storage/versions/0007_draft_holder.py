"""identity: the holder of each credential, kept with the address it was mailed to (decision 48).

A respondent's draft belongs to the holder named in their session. A credential mailed to the
same address as the one it replaces keeps its holder (a reset on the phone finds the draft);
one mailed anywhere else gets a new holder, so whoever redirected the mail finds no draft.
Credentials from before this revision get a holder of their own; a pending one (its address
unknown) a new one.

Revision ID: identity_0007
Revises: identity_0006
"""

from alembic import op

revision = "identity_0007"
down_revision = "identity_0006"
branch_labels = None
depends_on = None

FRESH = "replace(gen_random_uuid()::text, '-', '')"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE identity_credentials ADD COLUMN holder text, ADD COLUMN sent_to text, "
        "ADD COLUMN pending_holder text, ADD COLUMN pending_sent_to text"
    )
    op.execute(
        f"UPDATE identity_credentials c SET holder = {FRESH}, sent_to = lower(r.email), "
        f"pending_holder = CASE WHEN c.pending_hash IS NOT NULL THEN {FRESH} END "
        "FROM identity_respondents r "
        "WHERE r.campaign = c.campaign AND r.respondent_id = c.respondent_id"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE identity_credentials DROP COLUMN holder, DROP COLUMN sent_to, "
        "DROP COLUMN pending_holder, DROP COLUMN pending_sent_to"
    )
