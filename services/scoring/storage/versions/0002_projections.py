"""scoring: counters per unit x form x question, ballots per unit x form, results, deadlines.

Revision ID: scoring_0002
Revises: scoring_0001
"""

from alembic import op

revision = "scoring_0002"
down_revision = "scoring_0001"
branch_labels = None
depends_on = None


STATEMENTS = [
    """
    CREATE TABLE scoring_campaigns (
            campaign_id text PRIMARY KEY,
            version int NOT NULL,
            definition jsonb NOT NULL
        )
    """,
    """
    CREATE TABLE scoring_deadlines (
            campaign_id text PRIMARY KEY,
            seq bigint NOT NULL
        )
    """,
    """
    CREATE TABLE scoring_question_counts (
            campaign_id text NOT NULL,
            unit_code text NOT NULL,
            form_code text NOT NULL,
            question_id text NOT NULL,
            answered_count bigint NOT NULL,
            weight_sum numeric NOT NULL,
            dont_know_count bigint NOT NULL,
            PRIMARY KEY (campaign_id, unit_code, form_code, question_id)
        )
    """,
    """
    CREATE TABLE scoring_ballot_counts (
            campaign_id text NOT NULL,
            unit_code text NOT NULL,
            form_code text NOT NULL,
            received bigint NOT NULL,
            PRIMARY KEY (campaign_id, unit_code, form_code)
        )
    """,
    """
    CREATE TABLE scoring_results (
            campaign_id text NOT NULL,
            unit_code text NOT NULL,
            form_code text NOT NULL,  -- '' is the unit's total row
            unit_kind text NOT NULL,
            received bigint NOT NULL,
            quota bigint,
            raw text NOT NULL,
            adjusted text NOT NULL,
            rank int,
            PRIMARY KEY (campaign_id, unit_code, form_code)
        )
    """,
    """
    CREATE TABLE scoring_published (
            campaign_id text PRIMARY KEY,
            digest text NOT NULL,
            last_sequence bigint NOT NULL,
            seq bigint NOT NULL
        )
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DROP TABLE scoring_published, scoring_results, scoring_ballot_counts, "
        "scoring_question_counts, scoring_deadlines, scoring_campaigns"
    )
