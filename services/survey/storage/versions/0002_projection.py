"""survey: campaigns, respondents, waves, deadline, ballot counts, drafts.

No table holds answers next to a respondent id (docs/architecture.md, decision 7):
`respondents.voted` is a bare flag (no time, no ballot id); `ballot_counts` are counts; `drafts` are
keyed by the keyed pseudonym, never by the respondent, and are deleted when the ballot is submitted.

The offset trigger keeps `projection_offsets.seq` from moving backwards (except a reset to 0),
so two instances running the projection at once cannot re-apply events (see projection.py).

Revision ID: survey_0002
Revises: survey_0001
"""

from alembic import op

revision = "survey_0002"
down_revision = "survey_0001"
branch_labels = None
depends_on = None


UPGRADE = [
    """
        CREATE TABLE survey_campaigns (
            id text PRIMARY KEY,
            version integer NOT NULL,
            definition jsonb NOT NULL,
            frozen boolean NOT NULL DEFAULT false,
            closed boolean NOT NULL DEFAULT false
        )""",
    """CREATE TABLE survey_respondents (
            campaign text NOT NULL,
            respondent_id text NOT NULL,
            unit_code text,
            form_code text NOT NULL,
            full_name text NOT NULL,
            withdrawn boolean NOT NULL DEFAULT false,
            voted boolean NOT NULL DEFAULT false,
            PRIMARY KEY (campaign, respondent_id)
        )""",
    """CREATE INDEX survey_respondents_unit ON survey_respondents (campaign, unit_code)""",
    """CREATE TABLE survey_waves_opened (
            campaign text NOT NULL,
            wave_id text NOT NULL,
            seq bigint NOT NULL,
            PRIMARY KEY (campaign, wave_id)
        )""",
    """CREATE TABLE survey_deadlines (
            campaign text PRIMARY KEY,
            seq bigint NOT NULL
        )""",
    """CREATE TABLE survey_ballot_counts (
            campaign text NOT NULL,
            unit_code text NOT NULL,  -- '' for many-unit forms (the ballot rates every unit)
            form_code text NOT NULL,
            received integer NOT NULL,
            PRIMARY KEY (campaign, unit_code, form_code)
        )""",
    """CREATE TABLE survey_drafts (
            campaign text NOT NULL,
            pseudonym text NOT NULL,
            answers jsonb NOT NULL,
            PRIMARY KEY (campaign, pseudonym)
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
        """
        DROP TABLE IF EXISTS survey_drafts, survey_ballot_counts, survey_deadlines,
            survey_waves_opened, survey_respondents, survey_campaigns
        """
    )
