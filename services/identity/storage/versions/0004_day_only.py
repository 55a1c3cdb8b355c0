"""identity: per-person times kept to the day (docs/architecture.md, decision 15).

When a credential was issued, or when an address asked for a reset, to the second, would tell
when a respondent acted. The 3-a-day reset limit needs the day only; older requests are deleted.

Revision ID: identity_0004
Revises: identity_0003
"""

from alembic import op

revision = "identity_0004"
down_revision = "identity_0003"
branch_labels = None
depends_on = None

TODAY = "((now() AT TIME ZONE 'UTC')::date)"


def upgrade() -> None:
    op.execute("ALTER TABLE identity_credentials ALTER COLUMN issued_at DROP DEFAULT")
    op.execute(
        "ALTER TABLE identity_credentials ALTER COLUMN issued_at TYPE date "
        "USING (issued_at AT TIME ZONE 'UTC')::date"
    )
    op.execute("ALTER TABLE identity_credentials RENAME COLUMN issued_at TO issued_on")
    op.execute(f"ALTER TABLE identity_credentials ALTER COLUMN issued_on SET DEFAULT {TODAY}")
    op.execute("DELETE FROM identity_reset_requests WHERE at < now() - interval '1 day'")
    op.execute("ALTER TABLE identity_reset_requests ALTER COLUMN at DROP DEFAULT")
    op.execute(
        "ALTER TABLE identity_reset_requests ALTER COLUMN at TYPE date "
        "USING (at AT TIME ZONE 'UTC')::date"
    )
    op.execute("ALTER TABLE identity_reset_requests RENAME COLUMN at TO requested_on")
    op.execute(f"ALTER TABLE identity_reset_requests ALTER COLUMN requested_on SET DEFAULT {TODAY}")
    op.execute(
        "ALTER TABLE identity_reset_requests ALTER COLUMN handled_at TYPE date "
        "USING (handled_at AT TIME ZONE 'UTC')::date"
    )
    op.execute("ALTER TABLE identity_reset_requests RENAME COLUMN handled_at TO handled_on")
    op.execute(
        "CREATE INDEX identity_reset_requests_day ON identity_reset_requests (email, requested_on)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS identity_reset_requests_day")
    op.execute("ALTER TABLE identity_reset_requests RENAME COLUMN handled_on TO handled_at")
    op.execute(
        "ALTER TABLE identity_reset_requests ALTER COLUMN handled_at TYPE timestamptz "
        "USING handled_at::timestamp AT TIME ZONE 'UTC'"
    )
    op.execute("ALTER TABLE identity_reset_requests RENAME COLUMN requested_on TO at")
    op.execute("ALTER TABLE identity_reset_requests ALTER COLUMN at DROP DEFAULT")
    op.execute(
        "ALTER TABLE identity_reset_requests ALTER COLUMN at TYPE timestamptz "
        "USING at::timestamp AT TIME ZONE 'UTC'"
    )
    op.execute("ALTER TABLE identity_reset_requests ALTER COLUMN at SET DEFAULT now()")
    op.execute("ALTER TABLE identity_credentials RENAME COLUMN issued_on TO issued_at")
    op.execute("ALTER TABLE identity_credentials ALTER COLUMN issued_at DROP DEFAULT")
    op.execute(
        "ALTER TABLE identity_credentials ALTER COLUMN issued_at TYPE timestamptz "
        "USING issued_at::timestamp AT TIME ZONE 'UTC'"
    )
    op.execute("ALTER TABLE identity_credentials ALTER COLUMN issued_at SET DEFAULT now()")
