"""An in-memory reader of a few subjects of the log, from sequence 1, for as long as it runs.

Every service keeps two small facts in memory straight from the log: the stage of every campaign
(parindex/bus/campaign_watch.py, decision 39) and the staff sessions a reset or a disabled
account has ended (parindex/web/revocation.py, decision 42). Both read a handful of subjects
with an unacknowledged consumer, survive bus outages by reading on after the last sequence they
applied with a new consumer, and say when they have caught up with the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts import subjects
from contracts.events import Envelope, EventError, Payload
from parindex.bus.pull import live_fetch, pending, stream_seq
from parindex.bus.reading import read_event

log = logging.getLogger(__name__)


class LogFollower:
    """Subclasses name their subjects and fold each event in `fold`."""

    label = "follower"
    filters: list[str] = []

    def __init__(self) -> None:
        self.seen = 0  # the last stream sequence applied
        self.caught_up = asyncio.Event()

    def apply(self, raw: bytes, seq: int = 0, subject: str | None = None) -> None:
        """Decode one message and fold it, unless it cannot be read or is not on its own
        subject (docs/architecture.md, decision 47): the projections dead-letter those, and
        here they are no fact. Never raises for a bad message."""
        self.seen = max(self.seen, seq)
        try:
            env, payload = read_event(raw, subject)
        except EventError as exc:
            log.warning("%s: event %s skipped: %s", self.label, seq, exc)
            return
        self.fold(env, cast(Payload, payload))  # decode(), the default decoder: models only

    def fold(self, env: Envelope, payload: Payload) -> None:
        raise NotImplementedError

    async def run(self, nc: Client, stop: asyncio.Event | None = None) -> None:
        """Follow the log until `stop`; after any error or a reconnect, resume after the last
        applied sequence with a new consumer (the server may have lost the old one)."""
        delay = 0.5
        while stop is None or not stop.is_set():
            try:
                await self._follow(nc, stop)
                delay = 0.5
                await asyncio.sleep(0.2)  # the connection came back: a new consumer
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or a consumer lost: read on from `seen`
                log.warning("%s: %s; resuming after %s", self.label, exc, self.seen)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _follow(self, nc: Client, stop: asyncio.Event | None) -> None:
        reconnects = nc.stats["reconnects"]
        filters = self.filters
        sub = await nc.jetstream().pull_subscribe(
            filters[0] if len(filters) == 1 else "",
            None,
            stream=subjects.EVENTS_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.seen + 1,
                filter_subjects=filters if len(filters) > 1 else None,
                inactive_threshold=60,
            ),
        )
        try:
            if (await sub.consumer_info()).num_pending == 0:
                self.caught_up.set()
            busy = False
            while (stop is None or not stop.is_set()) and nc.stats["reconnects"] == reconnects:
                try:
                    msgs = await live_fetch(sub, 100, busy)
                except (NatsTimeout, TimeoutError):
                    busy = False
                    self.caught_up.set()  # nothing left to read
                    continue
                busy = bool(msgs)
                for m in msgs:
                    self.apply(m.data, stream_seq(m), m.subject)
                if msgs and pending(msgs[-1]) == 0:
                    self.caught_up.set()
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be gone; the server drops it when idle
                pass
