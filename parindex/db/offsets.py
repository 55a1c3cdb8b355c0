"""The projection_offsets table, defined once (docs/architecture.md, decisions 4, 24 and 28).

Every service's base migration (`<service>_0001`) creates it through `upgrade`, so the revision
ids already recorded in existing databases stay in the chain. A table created before decision
24 lacks `last_event_id`; the projection runner adds it once (`ADD_EVENT_ID`) rather than a
fifth migration per service. Nothing else creates or alters the table.
"""

from __future__ import annotations

from typing import Any

CREATE = (
    "CREATE TABLE IF NOT EXISTS projection_offsets "
    "(name text PRIMARY KEY, seq bigint NOT NULL, last_event_id text)"
)
ADD_EVENT_ID = "ALTER TABLE projection_offsets ADD COLUMN IF NOT EXISTS last_event_id text"
HAS_EVENT_ID = (
    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name = 'projection_offsets' AND column_name = 'last_event_id'"
)


def upgrade(op: Any) -> None:
    """For a service's base migration: `op` is alembic.op."""
    op.execute(CREATE)


def downgrade(op: Any) -> None:
    op.execute("DROP TABLE IF EXISTS projection_offsets")
