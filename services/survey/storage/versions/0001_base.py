"""survey: base schema (its projections and private tables arrive with their features).

Revision ID: survey_0001
Revises:
"""

from alembic import op

from parindex.db import offsets

revision = "survey_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    offsets.upgrade(op)  # the one definition of projection_offsets (decision 28)


def downgrade() -> None:
    offsets.downgrade(op)
