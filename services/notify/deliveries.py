"""Notify's use cases for staff: delivery counts and failures per campaign, and a resend.

Service layer (docs/architecture.md, decision 31): functions take the projection's sessions
(and the sender to wake) as arguments and refuse with the domain errors of errors.py; api.py,
web.py and rpc.py only translate.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.config import message_id
from services.notify.errors import (
    CampaignClosed,
    RespondentWithdrawn,
    UnknownCampaign,
    UnknownRespondent,
)
from services.notify.projection import campaign_closed, load_campaign
from services.notify.storage import queries


class Wakeable(Protocol):
    def poke(self) -> None: ...


def purpose_group(purpose: str) -> str:
    if purpose.startswith("notice:email:"):
        return "notice:email"  # one row for every notice to an old address (decision 48)
    return "invitation:resend" if purpose.startswith("invitation:resend:") else purpose


async def delivery_counts(sessions: async_sessionmaker[AsyncSession], campaign: str) -> dict:
    """Counts per unit, purpose and status, plus every failed delivery with its error."""
    async with sessions() as s:
        rows = await queries.outbox_counts(s, campaign)
        failed = await queries.failed(s, campaign)
    counts: dict[tuple, dict[str, int]] = {}
    for unit, purpose, status, n in rows:
        bucket = counts.setdefault((unit, purpose_group(purpose)), {})
        bucket[status] = bucket.get(status, 0) + int(n)
    return {
        "campaign_id": campaign,
        "counts": [
            {"unit_code": u, "purpose": p, "by_status": by}
            for (u, p), by in sorted(counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
        ],
        "failed": [
            {
                "respondent_id": rid,
                "unit_code": unit,
                "purpose": purpose,
                "attempts": attempts,
                "error": error,
                "at": at.isoformat() if at else None,
                "full_name": name,
                "email": email,
            }
            for rid, unit, purpose, attempts, error, at, name, email in failed
        ],
    }


async def queue_resend(
    sessions: async_sessionmaker[AsyncSession],
    sender: Wakeable | None,
    c: str,
    r: str,
    kind: str = "resend",
) -> dict[str, Any]:
    """A new outbox row 'invitation:<kind>:<n>' (admin resend, or a respondent's reset request).

    Refused (ResendRefused) for an unknown or closed campaign, an unknown or withdrawn person.
    """
    async with sessions.begin() as s:
        if await load_campaign(s, c) is None:
            raise UnknownCampaign()
        if await campaign_closed(s, c):
            raise CampaignClosed()
        withdrawn = await queries.withdrawn(s, c, r)
        if withdrawn is None:
            raise UnknownRespondent()
        if withdrawn:
            raise RespondentWithdrawn()
        # Serialise resends of one respondent so <n> is dense and never collides.
        await queries.lock_resends(s, c, r)
        n = await queries.count_purposes(s, c, r, f"invitation:{kind}:")
        purpose = f"invitation:{kind}:{n + 1}"
        mid = message_id(c, r, purpose)
        await queries.queue(s, c, r, purpose, mid)
    if sender is not None:
        sender.poke()
    return {"campaign_id": c, "respondent_id": r, "purpose": purpose, "message_id": mid}
