"""Reminders: at deadline − N days, queue a reminder for whoever has not answered yet.

Who has answered is known only to the survey service (docs/architecture.md, decision 7), so it
is asked by request-reply at the moment of the reminder. Each (campaign, offset) is decided once,
in the transaction that queues its rows (notify_reminder_runs), and rows are ON CONFLICT DO NOTHING,
so two instances or a crash mid-run never remind anyone twice. When several offsets are due at
once (notify was down at d-3 and wakes at d-1) only the nearest is sent: one reminder, not two.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta

from sqlalchemy import text

from contracts.campaign import Campaign
from contracts.rpc import NONRESPONDENTS, UnitRequest
from parindex.bus import rpc
from parindex.clock import Clock
from parindex.web.service import Runtime
from services.notify.config import NotifyConfig
from services.notify.projection import campaign_closed, enqueue, load_campaign

log = logging.getLogger(__name__)


def due_reminder(
    campaign: Campaign, now: datetime, done: AbstractSet[int]
) -> tuple[int | None, list[int]]:
    """Which reminder to send now, and which due ones to record as skipped: a pure decision.

    `now` is campaign time read from the clock; `done` the offsets (days before the deadline)
    already decided. Never at or after the deadline (DeadlineReached closes the campaign). Of
    several due at once only the nearest to the deadline is sent; none if a nearer one already
    went out.
    """
    if now >= campaign.deadline:
        return None, []
    due = sorted(
        o
        for o in set(campaign.reminder_offsets_days)
        if now >= campaign.deadline - timedelta(days=o) and o not in done
    )
    if not due:
        return None, []
    if min(done, default=due[0] + 1) < due[0]:
        return None, due  # a nearer reminder already went out
    return due[0], due[1:]


class ReminderScheduler:
    def __init__(
        self,
        rt: Runtime,
        config: NotifyConfig,
        clock: Clock,
        ready: asyncio.Event,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.rt = rt
        self.config = config
        self.clock = clock
        self.ready = ready
        self.on_queued = on_queued
        self.wake = asyncio.Event()

    async def run(self) -> None:
        await self.ready.wait()
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("reminder tick failed")
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.config.reminder_interval_s)
            except TimeoutError:
                pass

    async def tick(self) -> int:
        """Queue every reminder now due; returns how many rows were queued."""
        now = self.clock.now()
        async with self.rt.sessions() as session:
            open_campaigns = (
                await session.scalars(
                    text("SELECT campaign_id FROM notify_campaigns WHERE NOT closed")
                )
            ).all()
        queued = 0
        for campaign_id in open_campaigns:
            queued += await self._campaign(campaign_id, now)
        if queued:
            self.on_queued()
        return queued

    async def _campaign(self, campaign_id: str, now: datetime) -> int:
        async with self.rt.sessions() as session:
            campaign = await load_campaign(session, campaign_id)
            closed = await campaign_closed(session, campaign_id)
            done = set(
                (
                    await session.scalars(
                        text("SELECT offset_days FROM notify_reminder_runs WHERE campaign_id = :c"),
                        {"c": campaign_id},
                    )
                ).all()
            )
        if campaign is None or closed:
            return 0
        nearest, skipped = due_reminder(campaign, now, done)
        if nearest is None and not skipped:
            return 0
        ids: list[str] = []
        if nearest is not None:
            try:
                reply = await rpc.call(
                    self.rt.nc,
                    NONRESPONDENTS,
                    UnitRequest(campaign_id=campaign_id),
                    timeout=self.config.rpc_timeout_s,
                )
                ids = list(reply.respondent_ids)
            except Exception as exc:  # survey down or slow: try again next tick
                log.warning("reminder d-%s of %s postponed: %s", nearest, campaign_id, exc)
                return 0
        async with self.rt.sessions.begin() as session:
            for o in skipped:
                await session.execute(
                    text(
                        "INSERT INTO notify_reminder_runs (campaign_id, offset_days, outcome) "
                        "VALUES (:c, :o, 'skipped') ON CONFLICT DO NOTHING"
                    ),
                    {"c": campaign_id, "o": o},
                )
            if nearest is None:
                return 0
            claimed = await session.scalar(
                text(
                    "INSERT INTO notify_reminder_runs (campaign_id, offset_days, outcome) "
                    "VALUES (:c, :o, 'sent') ON CONFLICT DO NOTHING RETURNING offset_days"
                ),
                {"c": campaign_id, "o": nearest},
            )
            if claimed is None:
                return 0  # another instance queued this one
            # Only people whose invitation went out (their wave opened) and still take part.
            rows = (
                await session.execute(
                    text(
                        "SELECT r.respondent_id, r.form_code, r.unit_code "
                        "FROM notify_respondents r WHERE r.campaign_id = :c AND NOT r.withdrawn "
                        "AND r.respondent_id = ANY(:ids)"
                    ),
                    {"c": campaign_id, "ids": ids},
                )
            ).all()
            opened = set(
                (
                    await session.scalars(
                        text("SELECT wave_id FROM notify_waves_opened WHERE campaign_id = :c"),
                        {"c": campaign_id},
                    )
                ).all()
            )
            owed = []
            for rid, form, unit in rows:
                wave = campaign.wave_for(form, unit)
                if wave is not None and wave.id in opened:
                    owed.append((campaign_id, rid, f"reminder:d-{nearest}"))
            await enqueue(session, owed, None)
            await session.execute(
                text(
                    "UPDATE notify_reminder_runs SET queued = :n "
                    "WHERE campaign_id = :c AND offset_days = :o"
                ),
                {"n": len(owed), "c": campaign_id, "o": nearest},
            )
        log.info("reminder d-%s of %s: %d queued", nearest, campaign_id, len(owed))
        return len(owed)
