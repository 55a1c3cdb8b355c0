"""notify: its projection (campaigns, respondents, opened waves) and the delivery outbox.

The outbox is written by the projection in the same transaction as the stream offset, so one
WaveOpened yields exactly one row per respondent however often it is re-read. No secret is
stored: credentials are fetched from identity at send time (docs/architecture.md, decision 6).

Revision ID: notify_0002
Revises: notify_0001
"""

from alembic import op

revision = "notify_0002"
down_revision = "notify_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE notify_campaigns (
            campaign_id text PRIMARY KEY,
            campaign jsonb NOT NULL,
            closed boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute(
        """
        CREATE TABLE notify_respondents (
            campaign_id text NOT NULL,
            respondent_id text NOT NULL,
            full_name text NOT NULL,
            email text NOT NULL,
            unit_code text,
            form_code text NOT NULL,
            withdrawn boolean NOT NULL DEFAULT false,
            PRIMARY KEY (campaign_id, respondent_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE notify_waves_opened (
            campaign_id text NOT NULL,
            wave_id text NOT NULL,
            event_id text NOT NULL,
            PRIMARY KEY (campaign_id, wave_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE notify_outbox (
            id bigserial PRIMARY KEY,
            campaign_id text NOT NULL,
            respondent_id text NOT NULL,
            purpose text NOT NULL,
            message_id text NOT NULL UNIQUE,
            causation_id text,
            status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            event_published boolean NOT NULL DEFAULT false,
            UNIQUE (campaign_id, respondent_id, purpose),
            CHECK (status IN ('pending', 'sent', 'failed', 'cancelled'))
        )
        """
    )
    op.execute(
        "CREATE INDEX notify_outbox_due ON notify_outbox (next_attempt_at, id) "
        "WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX notify_outbox_unpublished ON notify_outbox (finished_at) "
        "WHERE NOT event_published AND status IN ('sent', 'failed')"
    )
    op.execute(
        """
        CREATE TABLE notify_reminder_runs (
            campaign_id text NOT NULL,
            offset_days integer NOT NULL,
            outcome text NOT NULL,
            queued integer NOT NULL DEFAULT 0,
            at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (campaign_id, offset_days)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "notify_reminder_runs",
        "notify_outbox",
        "notify_waves_opened",
        "notify_respondents",
        "notify_campaigns",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
