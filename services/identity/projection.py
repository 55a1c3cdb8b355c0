"""Identity's read model of the log: campaigns and the respondent registry.

Identity is the writer of respondent events, yet it reads its registry back from the log like
everyone else, so the registry can be dropped and rebuilt and always matches what other
services saw. Each batch locks the offset row and skips what another applier (a second
instance, or the CLI catching up) already applied; the 0002 trigger keeps the offset monotonic.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.campaign import Campaign
from contracts.events import (
    CampaignDefined,
    DeliveryFailed,
    InvitationSent,
    ReminderRequested,
    RespondentRegistered,
    RespondentUpdated,
    RespondentWithdrawn,
)
from parindex.bus.projection import Dispatching, Event, on, read_offset
from parindex.db import campaigns
from parindex.db.campaigns import CampaignTable

NAME = "identity"


class IdentityProjection(Dispatching):
    name = NAME

    async def reset(self, session: AsyncSession) -> None:
        for table in ("identity_campaigns", "identity_respondents", "identity_reminders"):
            await session.execute(text(f"DELETE FROM {table}"))

    @on(CampaignDefined)
    async def campaign_defined(self, s: AsyncSession, e: Event, p: CampaignDefined) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "INSERT INTO identity_campaigns (id, version, definition) "
                "VALUES (:id, :v, CAST(:d AS jsonb)) ON CONFLICT (id) DO UPDATE "
                "SET version = EXCLUDED.version, definition = EXCLUDED.definition "
                "WHERE identity_campaigns.version <= EXCLUDED.version"
            ),
            {"id": c, "v": p.campaign.version, "d": p.campaign.model_dump_json()},
        )

    @on(RespondentRegistered)
    async def registered(self, s: AsyncSession, e: Event, p: RespondentRegistered) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "INSERT INTO identity_respondents (campaign, respondent_id, username, "
                "full_name, email, unit_code, form_code, roles, phone, position, withdrawn, "
                "last_seq) VALUES (:c, :r, :u, :n, :e, :unit, :f, CAST(:roles AS jsonb), :ph, "
                ":pos, false, :s) ON CONFLICT (campaign, respondent_id) DO UPDATE SET "
                "username = EXCLUDED.username, full_name = EXCLUDED.full_name, "
                "email = EXCLUDED.email, unit_code = EXCLUDED.unit_code, "
                "form_code = EXCLUDED.form_code, roles = EXCLUDED.roles, "
                "phone = EXCLUDED.phone, position = EXCLUDED.position, withdrawn = false, "
                "last_seq = EXCLUDED.last_seq"
            ),
            {
                "c": c,
                "r": p.respondent_id,
                "u": p.username,
                "n": p.full_name,
                "e": p.email,
                "unit": p.unit_code,
                "f": p.form_code,
                "roles": json.dumps(p.roles),
                "ph": p.phone,
                "pos": p.position,
                "s": e.seq,
            },
        )

    @on(RespondentUpdated)
    async def updated(self, s: AsyncSession, e: Event, p: RespondentUpdated) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "UPDATE identity_respondents SET full_name = COALESCE(:n, full_name), "
                "email = COALESCE(:e, email), unit_code = COALESCE(:unit, unit_code), "
                "phone = COALESCE(:ph, phone), position = COALESCE(:pos, position), "
                "last_seq = :s "
                "WHERE campaign = :c AND respondent_id = :r"
            ),
            {
                "c": c,
                "r": p.respondent_id,
                "n": p.full_name,
                "e": p.email,
                "unit": p.unit_code,
                "ph": p.phone,
                "pos": p.position,
                "s": e.seq,
            },
        )

    @on(RespondentWithdrawn)
    async def withdrawn(self, s: AsyncSession, e: Event, p: RespondentWithdrawn) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "UPDATE identity_respondents SET withdrawn = true, last_seq = :s "
                "WHERE campaign = :c AND respondent_id = :r"
            ),
            {"c": c, "r": p.respondent_id, "s": e.seq},
        )

    # The registry page's delivery state (decision 34): whether, never when.
    @on(InvitationSent)
    async def invited(self, s: AsyncSession, e: Event, p: InvitationSent) -> None:
        await s.execute(
            text(
                "UPDATE identity_respondents SET invited = true, delivery_failed = false "
                "WHERE campaign = :c AND respondent_id = :r"
            ),
            {"c": e.envelope.campaign_id, "r": p.respondent_id},
        )

    @on(DeliveryFailed)
    async def delivery_failed(self, s: AsyncSession, e: Event, p: DeliveryFailed) -> None:
        if p.purpose.startswith("notice:"):
            return  # the old address after a change (decision 48): the person's mail is fine
        await s.execute(
            text(
                "UPDATE identity_respondents SET delivery_failed = true "
                "WHERE campaign = :c AND respondent_id = :r"
            ),
            {"c": e.envelope.campaign_id, "r": p.respondent_id},
        )

    @on(ReminderRequested)
    async def reminder_requested(self, s: AsyncSession, e: Event, p: ReminderRequested) -> None:
        await s.execute(
            text(
                "INSERT INTO identity_reminders (campaign, respondent_id, requested_on) "
                "VALUES (:c, :r, :d) ON CONFLICT (campaign, respondent_id) DO UPDATE SET "
                "requested_on = greatest(identity_reminders.requested_on, EXCLUDED.requested_on)"
            ),
            {"c": e.envelope.campaign_id, "r": p.respondent_id, "d": p.requested_on},
        )


# Reads ------------------------------------------------------------------------------------
RESPONDENT_COLUMNS = (
    "respondent_id, username, full_name, email, unit_code, form_code, roles, phone, "
    "position, withdrawn, last_seq"
)


CAMPAIGNS = CampaignTable("identity_campaigns")


async def load_campaign(s: AsyncSession, campaign_id: str) -> Campaign | None:
    return await campaigns.load_campaign(s, CAMPAIGNS, campaign_id)


async def respondents(
    s: AsyncSession,
    campaign_id: str,
    *,
    unit_code: str | None = None,
    include_withdrawn: bool = False,
) -> list[dict[str, Any]]:
    """The registry of a campaign as dicts (fields of RespondentRegistered plus bookkeeping)."""
    sql = f"SELECT {RESPONDENT_COLUMNS} FROM identity_respondents WHERE campaign = :c"
    params: dict[str, Any] = {"c": campaign_id}
    if unit_code is not None:
        sql += " AND unit_code = :u"
        params["u"] = unit_code
    if not include_withdrawn:
        sql += " AND NOT withdrawn"
    rows = await s.execute(text(sql + " ORDER BY unit_code NULLS FIRST, full_name"), params)
    out = []
    for row in rows.mappings():
        d = dict(row)
        if isinstance(d["roles"], str):
            d["roles"] = json.loads(d["roles"])
        out.append(d)
    return out


async def applied_offset(s: AsyncSession) -> int:
    return await read_offset(s, NAME)
