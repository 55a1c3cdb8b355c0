"""identity: campaign and respondent projection, credentials, staff users, login throttling.

Projection tables (`identity_campaigns`, `identity_respondents`) are rebuilt from the log;
the others are private data that never enters the log (docs/architecture.md, decision 6):
argon2id hashes of respondent credentials and staff passwords, login attempts, reset requests.

The offset trigger keeps `projection_offsets.seq` from moving backwards (except a reset to 0),
so the service's runner and a CLI catch-up may apply the projection at the same time.

Revision ID: identity_0002
Revises: identity_0001
"""

from alembic import op

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None

UPGRADE = [
    """CREATE TABLE identity_campaigns (
            id text PRIMARY KEY,
            version integer NOT NULL,
            definition jsonb NOT NULL
        )""",
    """CREATE TABLE identity_respondents (
            campaign text NOT NULL,
            respondent_id text NOT NULL,
            username text NOT NULL,
            full_name text NOT NULL,
            email text NOT NULL,
            unit_code text,
            form_code text NOT NULL,
            roles jsonb NOT NULL DEFAULT '[]',
            phone text,
            withdrawn boolean NOT NULL DEFAULT false,
            last_seq bigint NOT NULL,  -- last event applied to this respondent (event ids)
            PRIMARY KEY (campaign, respondent_id)
        )""",
    "CREATE INDEX identity_respondents_username ON identity_respondents (username)",
    "CREATE INDEX identity_respondents_email ON identity_respondents (lower(email))",
    "CREATE INDEX identity_respondents_unit ON identity_respondents (campaign, unit_code)",
    """CREATE TABLE identity_credentials (
            campaign text NOT NULL,
            respondent_id text NOT NULL,
            password_hash text NOT NULL,
            purpose text NOT NULL,
            issued_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (campaign, respondent_id)
        )""",
    """CREATE TABLE identity_users (
            username text PRIMARY KEY,
            role text NOT NULL,
            unit_code text,
            campaign_id text,
            password_hash text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""",
    """CREATE TABLE identity_login_attempts (
            id bigserial PRIMARY KEY,
            username text NOT NULL,
            ip text NOT NULL,
            outcome text NOT NULL,  -- ok | failed | locked
            at timestamptz NOT NULL DEFAULT now()
        )""",
    "CREATE INDEX identity_login_attempts_user ON identity_login_attempts (username, at)",
    "CREATE INDEX identity_login_attempts_ip ON identity_login_attempts (ip, at)",
    """CREATE TABLE identity_reset_requests (
            id bigserial PRIMARY KEY,
            email text NOT NULL,
            ip text NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            handled_at timestamptz
        )""",
    """CREATE OR REPLACE FUNCTION projection_offset_monotonic() RETURNS trigger AS $$
        BEGIN
            IF NEW.seq <> 0 AND NEW.seq < OLD.seq THEN
                NEW.seq := OLD.seq;
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER projection_offset_monotonic BEFORE UPDATE ON projection_offsets
            FOR EACH ROW EXECUTE FUNCTION projection_offset_monotonic()""",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS projection_offset_monotonic ON projection_offsets")
    op.execute("DROP FUNCTION IF EXISTS projection_offset_monotonic()")
    op.execute(
        """DROP TABLE IF EXISTS identity_reset_requests, identity_login_attempts, identity_users,
            identity_credentials, identity_respondents, identity_campaigns"""
    )
