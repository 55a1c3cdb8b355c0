"""identity: login attempts keyed by a digest of the account name; pending credentials.

Nothing typed into a login form is stored as typed: a password typed into the username field
used to be kept in `identity_login_attempts.username`. Attempts now carry a keyed digest
(`account`) and are throttling data only, so the old rows are dropped.

A new credential for a respondent who already has one (a reset, a reminder) is kept as
`pending_hash` until it is used: until then the earlier password keeps working, so an anonymous
reset request cannot lock anyone out (docs/architecture.md, decision 19).

Revision ID: identity_0003
Revises: identity_0002
"""

from alembic import op

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM identity_login_attempts")
    op.execute("DROP INDEX IF EXISTS identity_login_attempts_user")
    op.execute("DROP INDEX IF EXISTS identity_login_attempts_ip")
    op.execute("ALTER TABLE identity_login_attempts RENAME COLUMN username TO account")
    op.execute(
        "CREATE INDEX identity_login_attempts_account ON identity_login_attempts (account, at)"
    )
    op.execute("ALTER TABLE identity_credentials ADD COLUMN pending_hash text")
    op.execute("ALTER TABLE identity_credentials ADD COLUMN pending_purpose text")


def downgrade() -> None:
    op.execute("ALTER TABLE identity_credentials DROP COLUMN pending_purpose")
    op.execute("ALTER TABLE identity_credentials DROP COLUMN pending_hash")
    op.execute("DROP INDEX IF EXISTS identity_login_attempts_account")
    op.execute("DELETE FROM identity_login_attempts")
    op.execute("ALTER TABLE identity_login_attempts RENAME COLUMN account TO username")
    op.execute(
        "CREATE INDEX identity_login_attempts_user ON identity_login_attempts (username, at)"
    )
    op.execute("CREATE INDEX identity_login_attempts_ip ON identity_login_attempts (ip, at)")
