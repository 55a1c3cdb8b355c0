"""Notify's projection: who to write to, and one outbox row per delivery owed.

Rows are inserted with ON CONFLICT DO NOTHING in the batch's transaction, together with the
stream offset (parindex.bus.projection), so re-reading WaveOpened after a crash never queues
an e-mail twice. Delivery events written by the sender feed back here to mark rows, so a
rebuild from sequence 1 does not resend what the log says was sent.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.campaign import Campaign
from contracts.events import (
    CampaignClosed,
    CampaignDefined,
    DeadlineReached,
    DeliveryFailed,
    InvitationSent,
    NoticeSent,
    ReminderRequested,
    ReminderSent,
    RespondentRegistered,
    RespondentUpdated,
    RespondentWithdrawn,
    WaveOpened,
)
from parindex.bus.projection import Dispatching, Event, on
from parindex.db import campaigns
from parindex.db.campaigns import CampaignTable
from services.notify.config import message_id

log = logging.getLogger(__name__)

INSERT_OUTBOX = text(
    "INSERT INTO notify_outbox (campaign_id, respondent_id, purpose, message_id, causation_id) "
    "VALUES (:c, :r, :p, :m, :cause) ON CONFLICT DO NOTHING"
)
# A delivery to an address of its own: the notice to the old address (decision 48).
INSERT_NOTICE = text(
    "INSERT INTO notify_outbox (campaign_id, respondent_id, purpose, message_id, causation_id, "
    "address) VALUES (:c, :r, :p, :m, :cause, :a) ON CONFLICT DO NOTHING"
)


async def enqueue(
    session: AsyncSession, rows: list[tuple[str, str, str]], causation_id: str | None
) -> None:
    """Queue deliveries (campaign, respondent, purpose); an existing one is left untouched."""
    if rows:
        await session.execute(
            INSERT_OUTBOX,
            [
                {"c": c, "r": r, "p": p, "m": message_id(c, r, p), "cause": causation_id}
                for c, r, p in rows
            ],
        )


CAMPAIGNS = CampaignTable("notify_campaigns", id_column="campaign_id", definition_column="campaign")


async def load_campaign(session: AsyncSession, campaign_id: str) -> Campaign | None:
    return await campaigns.load_campaign(session, CAMPAIGNS, campaign_id)


async def campaign_closed(session: AsyncSession, campaign_id: str) -> bool:
    """Closed (DeadlineReached or CampaignClosed applied); False for an unknown campaign."""
    closed = await session.scalar(
        text("SELECT closed FROM notify_campaigns WHERE campaign_id = :c"), {"c": campaign_id}
    )
    return bool(closed)


class NotifyProjection(Dispatching):
    name = "notify"

    async def reset(self, session: AsyncSession) -> None:
        for table in ("notify_outbox", "notify_waves_opened", "notify_respondents"):
            await session.execute(text(f"DELETE FROM {table}"))
        await session.execute(text("DELETE FROM notify_campaigns"))

    @on(CampaignDefined)
    async def campaign_defined(self, s: AsyncSession, e: Event, p: CampaignDefined) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "INSERT INTO notify_campaigns (campaign_id, campaign) "
                "VALUES (:c, CAST(:j AS jsonb)) "
                "ON CONFLICT (campaign_id) DO UPDATE SET campaign = EXCLUDED.campaign"
            ),
            {"c": c, "j": p.campaign.model_dump_json()},
        )

    @on(RespondentRegistered)
    async def respondent_registered(
        self, s: AsyncSession, e: Event, p: RespondentRegistered
    ) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "INSERT INTO notify_respondents "
                "(campaign_id, respondent_id, full_name, email, unit_code, form_code) "
                "VALUES (:c, :r, :n, :e, :u, :f) ON CONFLICT (campaign_id, respondent_id) DO "
                "UPDATE SET full_name = EXCLUDED.full_name, email = EXCLUDED.email, "
                "unit_code = EXCLUDED.unit_code, form_code = EXCLUDED.form_code, withdrawn = false"
            ),
            {
                "c": c,
                "r": p.respondent_id,
                "n": p.full_name,
                "e": p.email,
                "u": p.unit_code,
                "f": p.form_code,
            },
        )
        # Registered after their wave opened (a late import): they are owed the invitation too.
        campaign = await load_campaign(s, c)
        if campaign is None or await campaign_closed(s, c):
            return
        wave = campaign.wave_for(p.form_code, p.unit_code)
        if wave is None:
            return
        opened = await s.scalar(
            text(
                "SELECT event_id FROM notify_waves_opened WHERE campaign_id = :c AND wave_id = :w"
            ),
            {"c": c, "w": wave.id},
        )
        if opened is not None:
            await enqueue(s, [(c, p.respondent_id, f"invitation:{wave.id}")], e.envelope.event_id)

    @on(RespondentUpdated)
    async def respondent_updated(self, s: AsyncSession, e: Event, p: RespondentUpdated) -> None:
        c = e.envelope.campaign_id
        before = (
            (
                await s.execute(
                    text(
                        "SELECT email, form_code, unit_code, withdrawn FROM notify_respondents "
                        "WHERE campaign_id = :c AND respondent_id = :r"
                    ),
                    {"c": c, "r": p.respondent_id},
                )
            )
            .mappings()
            .first()
        )
        await s.execute(
            text(
                "UPDATE notify_respondents SET full_name = coalesce(:n, full_name), "
                "email = coalesce(:e, email), unit_code = coalesce(:u, unit_code) "
                "WHERE campaign_id = :c AND respondent_id = :r"
            ),
            {"c": c, "r": p.respondent_id, "n": p.full_name, "e": p.email, "u": p.unit_code},
        )
        moved = p.email is not None and before is not None and before["email"] != p.email
        if moved and before is not None and not before["withdrawn"]:
            await self._tell_old_address(s, e, p.respondent_id, before["email"])
            # A corrected address gets a new invitation once the wave is open (decision 34);
            # the event id makes it one delivery, also when the log is replayed.
            if await self._wave_open(s, c, before["form_code"], p.unit_code or before["unit_code"]):
                purpose = f"invitation:email:{e.envelope.event_id}"
                await enqueue(s, [(c, p.respondent_id, purpose)], e.envelope.event_id)

    async def _tell_old_address(self, s: AsyncSession, e: Event, rid: str, old: str) -> None:
        """The address mail went to so far learns it was changed (docs/architecture.md,
        decision 48): someone who redirected the person's mail is then not unseen. Only if
        mail already went there and the campaign still runs; one notice per change."""
        c = e.envelope.campaign_id
        mailed = await s.scalar(
            text(
                "SELECT 1 FROM notify_outbox WHERE campaign_id = :c AND respondent_id = :r "
                "AND status = 'sent' AND purpose NOT LIKE 'notice:%' LIMIT 1"
            ),
            {"c": c, "r": rid},
        )
        if mailed is None or await campaign_closed(s, c):
            return
        purpose = f"notice:email:{e.envelope.event_id}"
        await s.execute(
            INSERT_NOTICE,
            {
                "c": c,
                "r": rid,
                "p": purpose,
                "m": message_id(c, rid, purpose),
                "cause": e.envelope.event_id,
                "a": old,
            },
        )

    async def _wave_open(self, s: AsyncSession, c: str, form: str, unit: str | None) -> bool:
        campaign = await load_campaign(s, c)
        if campaign is None or await campaign_closed(s, c):
            return False
        wave = campaign.wave_for(form, unit)
        if wave is None:
            return False
        opened = await s.scalar(
            text(
                "SELECT event_id FROM notify_waves_opened WHERE campaign_id = :c AND wave_id = :w"
            ),
            {"c": c, "w": wave.id},
        )
        return opened is not None

    @on(ReminderRequested)
    async def reminder_requested(self, s: AsyncSession, e: Event, p: ReminderRequested) -> None:
        """A reminder now (decision 34): one delivery per person and day, if still open."""
        c = e.envelope.campaign_id
        row = (
            await s.execute(
                text(
                    "SELECT form_code, unit_code, withdrawn FROM notify_respondents "
                    "WHERE campaign_id = :c AND respondent_id = :r"
                ),
                {"c": c, "r": p.respondent_id},
            )
        ).first()
        if row is None or row.withdrawn:
            return
        if await self._wave_open(s, c, row.form_code, row.unit_code):
            purpose = f"reminder:now-{p.requested_on.isoformat()}"
            await enqueue(s, [(c, p.respondent_id, purpose)], e.envelope.event_id)

    @on(RespondentWithdrawn)
    async def respondent_withdrawn(self, s: AsyncSession, e: Event, p: RespondentWithdrawn) -> None:
        c = e.envelope.campaign_id
        params = {"c": c, "r": p.respondent_id}
        await s.execute(
            text(
                "UPDATE notify_respondents SET withdrawn = true "
                "WHERE campaign_id = :c AND respondent_id = :r"
            ),
            params,
        )
        await s.execute(
            text(
                "UPDATE notify_outbox SET status = 'cancelled', "
                "finished_on = (now() AT TIME ZONE 'UTC')::date, "
                "next_attempt_at = NULL, "
                "last_error = 'respondent withdrawn', event_published = true "
                "WHERE campaign_id = :c AND respondent_id = :r AND status = 'pending'"
            ),
            params,
        )

    @on(WaveOpened)
    async def wave_opened(self, s: AsyncSession, e: Event, p: WaveOpened) -> None:
        c = e.envelope.campaign_id
        campaign = await load_campaign(s, c)
        if campaign is None:
            log.warning("WaveOpened %s for unknown campaign %s: nobody to invite", p.wave_id, c)
            return
        closed = await campaign_closed(s, c)
        await s.execute(
            text(
                "INSERT INTO notify_waves_opened (campaign_id, wave_id, event_id) "
                "VALUES (:c, :w, :e) ON CONFLICT DO NOTHING"
            ),
            {"c": c, "w": p.wave_id, "e": e.envelope.event_id},
        )
        if closed:
            return
        rows = (
            await s.execute(
                text(
                    "SELECT respondent_id, form_code, unit_code FROM notify_respondents "
                    "WHERE campaign_id = :c AND NOT withdrawn"
                ),
                {"c": c},
            )
        ).all()
        owed = []
        for rid, form, unit in rows:
            wave = campaign.wave_for(form, unit)
            if wave is not None and wave.id == p.wave_id:
                owed.append((c, rid, f"invitation:{p.wave_id}"))
        await enqueue(s, owed, e.envelope.event_id)

    async def _close(self, s: AsyncSession, c: str, reason: str) -> None:
        await s.execute(
            text("UPDATE notify_campaigns SET closed = true WHERE campaign_id = :c"), {"c": c}
        )
        # Nothing can be answered after the deadline: unsent mail would only mislead.
        await s.execute(
            text(
                "UPDATE notify_outbox SET status = 'cancelled', "
                "finished_on = (now() AT TIME ZONE 'UTC')::date, "
                "next_attempt_at = NULL, "
                "last_error = :why, event_published = true "
                "WHERE campaign_id = :c AND status = 'pending'"
            ),
            {"c": c, "why": reason},
        )

    @on(DeadlineReached)
    async def deadline_reached(self, s: AsyncSession, e: Event, p: DeadlineReached) -> None:
        c = e.envelope.campaign_id
        await self._close(s, c, "deadline reached")

    @on(CampaignClosed)
    async def closed(self, s: AsyncSession, e: Event, p: CampaignClosed) -> None:
        c = e.envelope.campaign_id
        await self._close(s, c, "campaign closed")

    async def _sent(self, s: AsyncSession, c: str, mid: str) -> None:
        await s.execute(
            text(
                "UPDATE notify_outbox SET status = 'sent', event_published = true, "
                "finished_on = coalesce(finished_on, (now() AT TIME ZONE 'UTC')::date), "
                "last_error = NULL, "
                "next_attempt_at = NULL "
                "WHERE campaign_id = :c AND message_id = :m "
                "AND (status <> 'sent' OR NOT event_published)"
            ),
            {"c": c, "m": mid},
        )

    @on(InvitationSent)
    async def invitation_sent(self, s: AsyncSession, e: Event, p: InvitationSent) -> None:
        c = e.envelope.campaign_id
        await self._sent(s, c, p.message_id)

    @on(NoticeSent)
    async def notice_sent(self, s: AsyncSession, e: Event, p: NoticeSent) -> None:
        await self._sent(s, e.envelope.campaign_id, p.message_id)

    @on(ReminderSent)
    async def reminder_sent(self, s: AsyncSession, e: Event, p: ReminderSent) -> None:
        c = e.envelope.campaign_id
        await self._sent(s, c, p.message_id)

    @on(DeliveryFailed)
    async def delivery_failed(self, s: AsyncSession, e: Event, p: DeliveryFailed) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "UPDATE notify_outbox SET status = 'failed', event_published = true, "
                "attempts = greatest(attempts, :a), last_error = :err, "
                "finished_on = coalesce(finished_on, (now() AT TIME ZONE 'UTC')::date), "
                "next_attempt_at = NULL "
                "WHERE campaign_id = :c AND respondent_id = :r AND purpose = :p "
                "AND status <> 'sent'"
            ),
            {"c": c, "r": p.respondent_id, "p": p.purpose, "a": p.attempts, "err": p.error},
        )
