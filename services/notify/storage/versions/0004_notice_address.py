"""notify: a delivery may go to an address of its own (decision 48).

When an admin corrects a respondent's address, notify tells the *old* address, so a person
whose mail was redirected learns of it; that row names its recipient instead of the
respondent's current address.

Revision ID: notify_0004
Revises: notify_0003
"""

from alembic import op

revision = "notify_0004"
down_revision = "notify_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE notify_outbox ADD COLUMN address text")


def downgrade() -> None:
    op.execute("DELETE FROM notify_outbox WHERE address IS NOT NULL")
    op.execute("ALTER TABLE notify_outbox DROP COLUMN address")
