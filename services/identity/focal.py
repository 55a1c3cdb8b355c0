"""The focal point's (đầu mối) use cases: the unit's list against quota, who has not answered.

A focal point sees its own unit only: how many people the list holds per form against the
quota, ballots received (survey's progress, already theirs), and the people survey says have
not answered, with their contact details, to chase them. Never a score or an answer before
publication (decision 16), never who answered or when (decision 15); reminders go through the
registry's rate-limited use case (docs/architecture.md, decisions 34 and 37).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.campaign import Campaign
from contracts.rpc import PROGRESS, UnitRequest
from parindex.bus import rpc
from parindex.web.auth import Principal
from services.identity import projection


@dataclass(frozen=True)
class FormLine:
    """One form of the unit: people on the list, the quota, ballots received (None: unknown)."""

    form_code: str
    form_name: str
    registered: int
    quota: int | None
    received: int | None

    @property
    def short(self) -> bool:
        """The list cannot reach the quota even if everybody answers."""
        return self.quota is not None and self.registered < self.quota


async def campaign_for(s: AsyncSession, p: Principal, wanted: str = "") -> Campaign | None:
    """The focal point's campaign: its account's, else the one asked for or the latest that has
    its unit; None when identity knows none."""
    if p.campaign_id:
        ids = [p.campaign_id]
    else:
        rows = await s.execute(text("SELECT id FROM identity_campaigns ORDER BY id DESC"))
        ids = [r for (r,) in rows.all()]
        if wanted in ids:
            ids = [wanted]
    for cid in ids:
        campaign = await projection.load_campaign(s, cid)
        if campaign is not None and any(u.code == p.unit_code for u in campaign.units):
            return campaign
    return None


async def form_lines(
    s: AsyncSession, nc: Any, campaign: Campaign, unit_code: str
) -> list[FormLine]:
    """Per form whose respondents belong to this unit: list size, quota, ballots received."""
    kind = campaign.unit(unit_code).kind
    result = await s.execute(
        text(
            "SELECT form_code, count(*) FROM identity_respondents WHERE campaign = :c "
            "AND unit_code = :u AND NOT withdrawn GROUP BY form_code"
        ),
        {"c": campaign.id, "u": unit_code},
    )
    counts: dict[str, int] = {form: int(n) for form, n in result.all()}
    received = await _received(nc, campaign.id, unit_code)
    return [
        FormLine(
            form_code=f.code,
            form_name=f.name,
            registered=int(counts.get(f.code, 0)),
            quota=campaign.quota(f.code, unit_code),
            received=None if received is None else received.get(f.code, 0),
        )
        for f in campaign.forms
        if kind in f.respondent_unit_kinds or f.code in counts
    ]


async def _received(nc: Any, campaign_id: str, unit_code: str) -> dict[str, int] | None:
    """Ballots received per form for the unit, from survey; None when survey cannot say."""
    try:
        reply = await rpc.call(
            nc, PROGRESS, UnitRequest(campaign_id=campaign_id, unit_code=unit_code)
        )
    except (rpc.RpcError, ValidationError):
        return None
    return {r.form_code: r.received for r in reply.units if r.unit_code == unit_code}
