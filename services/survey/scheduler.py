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
import time
from datetime import UTC, datetime

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import DeadlineReached, Payload, WaveOpened, make
from parindex.bus.publish import ConcurrencyConflict, publish_event
from parindex.settings import Settings

log = logging.getLogger(__name__)


class Clock:
    """Wall-clock time, UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class AcceleratedClock(Clock):
    """Campaign time = start + speed × wall seconds since creation; `set` jumps (tests, demo)."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        self.speed = speed
        self.set(start)

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("clock time needs a UTC offset")
        self._start = at.astimezone(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        from datetime import timedelta

        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


def clock_from_settings(settings: Settings) -> Clock:
    if settings.clock_start or settings.clock_speed != 1:
        start = (
            datetime.fromisoformat(settings.clock_start)
            if settings.clock_start
            else datetime.now(UTC)
        )
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if settings.clock_epoch:  # shared anchor: all processes agree on campaign time
            from datetime import timedelta

            elapsed = (time.time() - settings.clock_epoch) * settings.clock_speed
            start = start + timedelta(seconds=elapsed)
        return AcceleratedClock(start, settings.clock_speed)
    return Clock()


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
            for wave in campaign.waves:
                if wave.id in opened or wave.opens_at > now:
                    continue
                written += await self._once(
                    subjects.wave(campaign.id, wave.id),
                    WaveOpened(wave_id=wave.id, opens_at=wave.opens_at),
                    campaign.id,
                )
            if not deadline_done and campaign.deadline <= now:
                written += await self._once(
                    subjects.deadline(campaign.id),
                    DeadlineReached(deadline=campaign.deadline),
                    campaign.id,
                )
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
