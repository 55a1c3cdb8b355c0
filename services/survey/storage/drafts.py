"""SQL of the campaign drafts (docs/architecture.md, decision 38); the caller owns the session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

KEEP = 200  # drafts kept; older ones are deleted as new ones arrive


async def save(
    s: AsyncSession, draft_id: str, campaign_id: str, definition: str, source: str, by: str
) -> None:
    await s.execute(
        text(
            "INSERT INTO survey_campaign_drafts (id, campaign_id, definition, source, created_by) "
            "VALUES (:i, :c, CAST(:d AS jsonb), :s, :b)"
        ),
        {"i": draft_id, "c": campaign_id, "d": definition, "s": source, "b": by},
    )
    await s.execute(
        text(
            "DELETE FROM survey_campaign_drafts WHERE id IN (SELECT id FROM "
            "survey_campaign_drafts ORDER BY made DESC OFFSET :k)"
        ),
        {"k": KEEP},
    )


async def load(s: AsyncSession, draft_id: str) -> dict[str, Any] | None:
    row = (
        (
            await s.execute(
                text(
                    "SELECT id, campaign_id, definition::text AS definition, source, created_by, "
                    "published_version FROM survey_campaign_drafts WHERE id = :i"
                ),
                {"i": draft_id},
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def mark_published(s: AsyncSession, draft_id: str, version: int) -> None:
    await s.execute(
        text("UPDATE survey_campaign_drafts SET published_version = :v WHERE id = :i"),
        {"v": version, "i": draft_id},
    )


async def listed(s: AsyncSession) -> list[dict[str, Any]]:
    rows = await s.execute(
        text(
            "SELECT id, campaign_id, definition->>'name' AS name, source, created_on "
            "FROM survey_campaign_drafts WHERE published_version IS NULL "
            "ORDER BY made DESC LIMIT 50"
        )
    )
    return [dict(r) for r in rows.mappings()]


async def campaigns(s: AsyncSession) -> list[dict[str, Any]]:
    """Campaigns on the log (the projection): id, name, version, frozen, closed."""
    rows = await s.execute(
        text(
            "SELECT id, definition->>'name' AS name, version, frozen, closed "
            "FROM survey_campaigns ORDER BY id"
        )
    )
    return [dict(r) for r in rows.mappings()]
