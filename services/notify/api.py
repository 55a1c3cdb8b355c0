"""Admin API (HTTP JSON adapter): delivery progress per unit and purpose, the failures, and a
resend button. The use cases are in deliveries.py; `REFUSALS` maps their domain errors to HTTP,
here only (docs/architecture.md, decision 31)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from parindex.web.csrf import JsonCsrf
from parindex.web.deps import Admin, RuntimeDep
from parindex.web.service import Runtime
from services.notify.deliveries import delivery_counts, queue_resend
from services.notify.errors import (
    CampaignClosed,
    ResendRefused,
    RespondentWithdrawn,
    UnknownCampaign,
    UnknownRespondent,
)

router = APIRouter(prefix="/api/deliveries", tags=["deliveries"])

# Domain error -> HTTP status; the body's detail is the error's English reason.
REFUSALS: dict[type[ResendRefused], int] = {
    UnknownCampaign: 404,
    CampaignClosed: 409,
    UnknownRespondent: 404,
    RespondentWithdrawn: 409,
}


class ResendRequest(BaseModel):
    campaign_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    respondent_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


@router.get("")
async def deliveries(
    rt: RuntimeDep, _: Admin, campaign: str = Query(..., description="campaign id")
) -> dict:
    """Counts per unit, purpose and status, plus every failed delivery with its error."""
    return await delivery_counts(rt.sessions, campaign)


@router.post("/resend", status_code=202)
async def resend(body: ResendRequest, rt: RuntimeDep, _: Admin, __: JsonCsrf) -> dict:
    """Queue a fresh invitation (with a fresh credential) as a new delivery of its own."""
    return await queue_resend_or_refuse(rt, body)


async def queue_resend_or_refuse(rt: Runtime, body: ResendRequest) -> dict:
    """The resend use case, its refusals as HTTP errors (the pages show them as pages)."""
    try:
        return await queue_resend(
            rt.sessions, rt.extras.get("sender"), body.campaign_id, body.respondent_id
        )
    except ResendRefused as exc:
        raise HTTPException(REFUSALS.get(type(exc), 409), exc.reason) from None
