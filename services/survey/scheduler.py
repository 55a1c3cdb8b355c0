"""Time on the log (docs/architecture.md, decision 8): WaveOpened and DeadlineReached, once each.

Every instance runs this loop. Each wave and the deadline has its own subject, published with
expected last subject sequence 0, so JetStream lets exactly one instance write it; the others get
ConcurrencyConflict and move on. The clock is injectable: tests and the accelerated demo move
campaign time without touching the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Set as AbstractSet
from datetime import datetime

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import DeadlineReached, Payload, WaveOpened, make
from parindex.bus.publish import ConcurrencyConflict, publish_event
from parindex.clock import Clock

log = logging.getLogger(__name__)


def due_events(
    campaign: Campaign, now: datetime, opened: AbstractSet[str], deadline_done: bool
) -> list[tuple[str, Payload]]:
    """The events now due, each with its subject: a pure decision of campaign time `now`.

    A wave opens once its opens_at has come and it is not yet on the log (`opened`); the
    deadline once its time has come, at or after the last wave in the same tick.
    """
    due: list[tuple[str, Payload]] = [
        (subjects.wave(campaign.id, w.id), WaveOpened(wave_id=w.id, opens_at=w.opens_at))
        for w in campaign.waves
        if w.id not in opened and w.opens_at <= now
    ]
    if not deadline_done and campaign.deadline <= now:
        due.append((subjects.deadline(campaign.id), DeadlineReached(deadline=campaign.deadline)))
    return due


class Scheduler:
    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker,
        clock: Clock,
        *,
        interval: float = 0.5,
        producer: str = "survey",
    ) -> None:
        self.js = js
        self.sessions = sessions
        self.clock = clock
        self.interval = interval
        self.producer = producer
        self._decided: set[str] = set()  # subjects known to be written: skip them quickly

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed; retrying")
            await asyncio.sleep(self.interval)

    async def tick(self) -> int:
        """Publish whatever is due; returns how many events this instance wrote."""
        now = self.clock.now()
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    text(
                        "SELECT c.definition, "
                        "ARRAY(SELECT wave_id FROM survey_waves_opened w WHERE w.campaign = c.id), "
                        "EXISTS(SELECT 1 FROM survey_deadlines d WHERE d.campaign = c.id) "
                        "FROM survey_campaigns c WHERE NOT c.closed"
                    )
                )
            ).all()
        written = 0
        for definition, opened, deadline_done in rows:
            if isinstance(definition, str):
                definition = json.loads(definition)
            campaign = Campaign.model_validate(definition)
            for subject, payload in due_events(campaign, now, set(opened), deadline_done):
                written += await self._once(subject, payload, campaign.id)
        return written

    async def _once(self, subject: str, payload: Payload, campaign_id: str) -> int:
        if subject in self._decided:
            return 0  # written; the projection has not caught up yet
        try:
            await publish_event(
                self.js,
                subject,
                make(payload, campaign_id=campaign_id, producer=self.producer),
                expected_last_subject_seq=0,
            )
        except ConcurrencyConflict:
            self._decided.add(subject)  # another instance (or an earlier run) wrote it
            return 0
        self._decided.add(subject)
        log.info("published %s on %s", type(payload).__name__, subject)
        return 1
