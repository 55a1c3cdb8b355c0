"""The SQL of notify's use cases on its own tables (outbox, respondents, campaigns).

Each function takes an open session; the caller decides the transaction
(docs/architecture.md, decision 31).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def outbox_counts(s: AsyncSession, campaign_id: str) -> list[tuple[Any, ...]]:
    """(unit_code, purpose, status, count) of a campaign's outbox."""
    rows = await s.execute(
        text(
            "SELECT r.unit_code, o.purpose, o.status, count(*) FROM notify_outbox o "
            "LEFT JOIN notify_respondents r USING (campaign_id, respondent_id) "
            "WHERE o.campaign_id = :c GROUP BY 1, 2, 3"
        ),
        {"c": campaign_id},
    )
    return [tuple(r) for r in rows.all()]


async def failed(s: AsyncSession, campaign_id: str) -> list[tuple[Any, ...]]:
    """(respondent_id, unit_code, purpose, attempts, last_error, finished_on, full_name,
    email) of failures: the staff page names the person, not the id; the address is the one
    the delivery went to (a notice's, decision 48)."""
    rows = await s.execute(
        text(
            "SELECT o.respondent_id, r.unit_code, o.purpose, o.attempts, o.last_error, "
            "o.finished_on, r.full_name, COALESCE(o.address, r.email) FROM notify_outbox o "
            "LEFT JOIN notify_respondents r USING (campaign_id, respondent_id) "
            "WHERE o.campaign_id = :c AND o.status = 'failed' ORDER BY r.unit_code, o.id"
        ),
        {"c": campaign_id},
    )
    return [tuple(r) for r in rows.all()]


async def withdrawn(s: AsyncSession, campaign_id: str, respondent_id: str) -> bool | None:
    """Whether the respondent was withdrawn; None when notify does not know it."""
    value = await s.scalar(
        text(
            "SELECT withdrawn FROM notify_respondents WHERE campaign_id = :c AND respondent_id = :r"
        ),
        {"c": campaign_id, "r": respondent_id},
    )
    return None if value is None else bool(value)


async def lock_resends(s: AsyncSession, campaign_id: str, respondent_id: str) -> None:
    """Serialise resends of one respondent (until the transaction ends)."""
    await s.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
        {"k": f"notify-resend:{campaign_id}:{respondent_id}"},
    )


async def count_purposes(s: AsyncSession, campaign_id: str, respondent_id: str, prefix: str) -> int:
    n = await s.scalar(
        text(
            "SELECT count(*) FROM notify_outbox WHERE campaign_id = :c "
            "AND respondent_id = :r AND purpose LIKE :like"
        ),
        {"c": campaign_id, "r": respondent_id, "like": f"{prefix}%"},
    )
    return int(n or 0)


async def queue(
    s: AsyncSession, campaign_id: str, respondent_id: str, purpose: str, message_id: str
) -> None:
    await s.execute(
        text(
            "INSERT INTO notify_outbox (campaign_id, respondent_id, purpose, message_id) "
            "VALUES (:c, :r, :p, :m)"
        ),
        {"c": campaign_id, "r": respondent_id, "p": purpose, "m": message_id},
    )


async def campaign_ids(s: AsyncSession) -> list[str]:
    """Every campaign notify knows, newest id first."""
    ids = await s.scalars(
        text("SELECT campaign_id FROM notify_campaigns ORDER BY campaign_id DESC")
    )
    return list(ids.all())
