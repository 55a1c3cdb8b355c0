"""notify: a delivery keeps its day only once finished (docs/architecture.md, decision 15).

Reminders go only to non-respondents, so the exact time of each delivery would narrow down when
someone voted. `next_attempt_at` stays while a row is pending, and until its event is published
(the republish sweep needs an age in seconds); then it is cleared. Creation and finish keep the
day only.

Revision ID: notify_0003
Revises: notify_0002
"""

from alembic import op

revision = "notify_0003"
down_revision = "notify_0002"
branch_labels = None
depends_on = None

TODAY = "((now() AT TIME ZONE 'UTC')::date)"


def _to_date(old: str, new: str, default: bool) -> None:
    op.execute(f"ALTER TABLE notify_outbox ALTER COLUMN {old} DROP DEFAULT")
    op.execute(
        f"ALTER TABLE notify_outbox ALTER COLUMN {old} TYPE date "
        f"USING ({old} AT TIME ZONE 'UTC')::date"
    )
    op.execute(f"ALTER TABLE notify_outbox RENAME COLUMN {old} TO {new}")
    if default:
        op.execute(f"ALTER TABLE notify_outbox ALTER COLUMN {new} SET DEFAULT {TODAY}")


def _to_timestamp(old: str, new: str, default: bool) -> None:
    op.execute(f"ALTER TABLE notify_outbox ALTER COLUMN {old} DROP DEFAULT")
    op.execute(
        f"ALTER TABLE notify_outbox ALTER COLUMN {old} TYPE timestamptz "
        f"USING {old}::timestamp AT TIME ZONE 'UTC'"
    )
    op.execute(f"ALTER TABLE notify_outbox RENAME COLUMN {old} TO {new}")
    if default:
        op.execute(f"ALTER TABLE notify_outbox ALTER COLUMN {new} SET DEFAULT now()")


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS notify_outbox_unpublished")
    _to_date("created_at", "created_on", True)
    _to_date("finished_at", "finished_on", False)
    op.execute("ALTER TABLE notify_outbox ALTER COLUMN next_attempt_at DROP NOT NULL")
    op.execute(
        "UPDATE notify_outbox SET next_attempt_at = NULL "
        "WHERE status <> 'pending' AND event_published"
    )
    op.execute(
        "CREATE INDEX notify_outbox_unpublished ON notify_outbox (next_attempt_at) "
        "WHERE NOT event_published AND status IN ('sent', 'failed')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS notify_outbox_unpublished")
    op.execute("UPDATE notify_outbox SET next_attempt_at = now() WHERE next_attempt_at IS NULL")
    op.execute("ALTER TABLE notify_outbox ALTER COLUMN next_attempt_at SET NOT NULL")
    _to_timestamp("finished_on", "finished_at", False)
    _to_timestamp("created_on", "created_at", True)
    op.execute(
        "CREATE INDEX notify_outbox_unpublished ON notify_outbox (finished_at) "
        "WHERE NOT event_published AND status IN ('sent', 'failed')"
    )
