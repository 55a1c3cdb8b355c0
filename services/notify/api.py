"""Admin API: delivery progress per unit and purpose, the failures, and a resend button."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import text

from parindex.web.csrf import JsonCsrf
from parindex.web.deps import Admin, RuntimeDep
from parindex.web.service import Runtime
from services.notify.config import message_id
from services.notify.projection import campaign_closed, load_campaign

router = APIRouter(prefix="/api/deliveries", tags=["deliveries"])


class ResendRequest(BaseModel):
    campaign_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    respondent_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _purpose_group(purpose: str) -> str:
    return "invitation:resend" if purpose.startswith("invitation:resend:") else purpose


@router.get("")
async def deliveries(
    rt: RuntimeDep, _: Admin, campaign: str = Query(..., description="campaign id")
) -> dict:
    """Counts per unit, purpose and status, plus every failed delivery with its error."""
    return await delivery_counts(rt, campaign)


async def delivery_counts(rt: Runtime, campaign: str) -> dict:
    async with rt.sessions() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT r.unit_code, o.purpose, o.status, count(*) FROM notify_outbox o "
                    "LEFT JOIN notify_respondents r USING (campaign_id, respondent_id) "
                    "WHERE o.campaign_id = :c GROUP BY 1, 2, 3"
                ),
                {"c": campaign},
            )
        ).all()
        failed = (
            await s.execute(
                text(
                    "SELECT o.respondent_id, r.unit_code, o.purpose, o.attempts, o.last_error, "
                    "o.finished_on FROM notify_outbox o "
                    "LEFT JOIN notify_respondents r USING (campaign_id, respondent_id) "
                    "WHERE o.campaign_id = :c AND o.status = 'failed' ORDER BY r.unit_code, o.id"
                ),
                {"c": campaign},
            )
        ).all()
    counts: dict[tuple, dict[str, int]] = {}
    for unit, purpose, status, n in rows:
        bucket = counts.setdefault((unit, _purpose_group(purpose)), {})
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
            }
            for rid, unit, purpose, attempts, error, at in failed
        ],
    }


@router.post("/resend", status_code=202)
async def resend(body: ResendRequest, rt: RuntimeDep, _: Admin, __: JsonCsrf) -> dict:
    """Queue a fresh invitation (with a fresh credential) as a new delivery of its own."""
    return await queue_resend_or_refuse(rt, body)


async def queue_resend_or_refuse(rt: Runtime, body: ResendRequest) -> dict:
    try:
        return await queue_resend(rt, body.campaign_id, body.respondent_id)
    except ResendRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None


class ResendRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def queue_resend(rt: Runtime, c: str, r: str, kind: str = "resend") -> dict:
    """A new outbox row 'invitation:<kind>:<n>' (admin resend, or a respondent's reset request)."""
    async with rt.sessions.begin() as s:
        if await load_campaign(s, c) is None:
            raise ResendRefused(404, "unknown campaign")
        if await campaign_closed(s, c):
            raise ResendRefused(409, "campaign is closed")
        withdrawn = await s.scalar(
            text(
                "SELECT withdrawn FROM notify_respondents "
                "WHERE campaign_id = :c AND respondent_id = :r"
            ),
            {"c": c, "r": r},
        )
        if withdrawn is None:
            raise ResendRefused(404, "unknown respondent")
        if withdrawn:
            raise ResendRefused(409, "respondent withdrawn")
        # Serialise resends of one respondent so <n> is dense and never collides.
        await s.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"notify-resend:{c}:{r}"}
        )
        n = await s.scalar(
            text(
                "SELECT count(*) FROM notify_outbox WHERE campaign_id = :c "
                "AND respondent_id = :r AND purpose LIKE :like"
            ),
            {"c": c, "r": r, "like": f"invitation:{kind}:%"},
        )
        purpose = f"invitation:{kind}:{int(n) + 1}"
        mid = message_id(c, r, purpose)
        await s.execute(
            text(
                "INSERT INTO notify_outbox (campaign_id, respondent_id, purpose, message_id) "
                "VALUES (:c, :r, :p, :m)"
            ),
            {"c": c, "r": r, "p": purpose, "m": mid},
        )
    sender = rt.extras.get("sender")
    if sender is not None:
        sender.poke()
    return {"campaign_id": c, "respondent_id": r, "purpose": purpose, "message_id": mid}
