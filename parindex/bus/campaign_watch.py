"""Every service keeps the stage of every campaign in memory, read from the log.

The staff layout shows the picked campaign's stage on every page of every service
(docs/architecture.md, decision 39). Each service's projection sees only some of the events
that move a stage, so instead of four migrations this watcher reads just those subjects
(contracts/lifecycle.py: SUBJECT_FILTERS — a handful of events per campaign) with an
unacknowledged consumer from sequence 1, and folds them with `Facts.apply`. Reading a page never
waits on it; it answers from memory. Decisions that must be exact (an import into a closed
campaign) ask the log directly (`stage_from_log`).
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.events import CampaignClosed, EventError, decode
from contracts.lifecycle import SUBJECT_FILTERS, Facts, Stage, status

log = logging.getLogger(__name__)


class CampaignWatch:
    """The lifecycle facts of every campaign on the log, newest definition order kept."""

    def __init__(self) -> None:
        self.facts: dict[str, Facts] = {}
        self.seen = 0  # the last stream sequence applied

    def stage(self, campaign_id: str | None) -> Stage:
        return status(self.facts.get(campaign_id or ""))

    def campaigns(self) -> list[str]:
        """Defined campaigns, the most recently defined first (as pages default to)."""
        return [c for c in reversed(self.facts) if self.facts[c].defined]

    def name(self, campaign_id: str) -> str:
        f = self.facts.get(campaign_id)
        return f.name if f else ""

    def apply(self, raw: bytes, seq: int) -> None:
        self.seen = max(self.seen, seq)
        try:
            env, payload = decode(raw)
        except EventError:  # dead-lettered by the projections; not a stage fact
            return
        facts = self.facts.setdefault(env.campaign_id, Facts())
        if type(payload).__name__ == "CampaignDefined" and facts.defined:
            self.facts.pop(env.campaign_id)  # a redefinition moves it to the newest place
            self.facts[env.campaign_id] = facts
        facts.apply(payload)

    async def run(self, nc: Client, stop: asyncio.Event | None = None) -> None:
        """Follow the log for ever; after any error or a reconnect, resume after the last
        applied sequence with a new consumer (the server may have lost the old one)."""
        while stop is None or not stop.is_set():
            try:
                await self._follow(nc)
                await asyncio.sleep(0.2)  # the connection came back: a new consumer
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or a consumer lost: read on from `seen`
                log.warning("campaign watch: %s; resuming after %s", exc, self.seen)
                await asyncio.sleep(1.0)

    async def _follow(self, nc: Client) -> None:
        reconnects = nc.stats["reconnects"]
        sub = await nc.jetstream().pull_subscribe(
            "",
            None,
            stream=subjects.EVENTS_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.seen + 1,
                filter_subjects=SUBJECT_FILTERS,
                inactive_threshold=60,
            ),
        )
        try:
            while nc.stats["reconnects"] == reconnects:
                try:
                    msgs = await sub.fetch(100, timeout=1.0)
                except (NatsTimeout, TimeoutError):
                    continue
                for m in msgs:
                    self.apply(m.data, m.metadata.sequence.stream)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be gone; the server drops it when idle
                pass


async def closed_on_log(js: JetStreamContext, campaign_id: str) -> bool:
    """Exactly, from the log: has the campaign's deadline passed or has it been closed?"""
    for subject in (subjects.deadline(campaign_id), subjects.results(campaign_id)):
        try:
            await js.get_last_msg(subjects.EVENTS_STREAM, subject)
            return True
        except NotFoundError:
            pass
    try:
        last = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.campaign(campaign_id))
    except NotFoundError:
        return False
    try:
        return isinstance(decode(last.data or b"")[1], CampaignClosed)
    except EventError:
        return False
