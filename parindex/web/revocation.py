"""Staff sessions the log has ended: a disabled account, a password reset (decision 42).

A session is a signed token every service verifies alone (decision 5), so disabling an account
in identity used to leave its sessions valid in every service until they expired, up to eight
hours. Each service now follows the staff accounts' events on the log and refuses a staff
token issued before the account's last reset, or any token of a disabled account. The follower
catches up before the service answers; until it has, staff tokens are refused (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import math

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts import subjects
from contracts.events import EventError, StaffAccountDisabled, StaffPasswordReset, decode

log = logging.getLogger("parindex.revocation")

STAFF_ROLES = frozenset({"admin", "auditor", "focal_point"})
FILTER = f"par.evt.{subjects.STAFF_CAMPAIGN}.account.>"


class Revocations:
    """username → the moment before which its sessions no longer count (inf: disabled)."""

    def __init__(self) -> None:
        self.after: dict[str, float] = {}
        self.caught_up = asyncio.Event()
        self.last_seq = 0

    def apply(self, raw: bytes) -> None:
        try:
            env, payload = decode(raw)
        except EventError as exc:  # a projection dead-letters it; here it just cannot revoke
            log.warning("revocations: unreadable staff event skipped: %s", exc)
            return
        if isinstance(payload, StaffAccountDisabled):
            self.after[payload.username] = math.inf
        elif isinstance(payload, StaffPasswordReset):
            at = env.occurred_at.timestamp()
            self.after[payload.username] = max(self.after.get(payload.username, 0.0), at)

    def revoked(self, username: str, issued_at: float) -> bool:
        after = self.after.get(username)
        return after is not None and issued_at <= after

    async def follow(self, nc: Client, js: JetStreamContext, stop: asyncio.Event) -> None:
        """Read the staff events from the start, then keep following; survives bus outages."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self._read(nc, js, stop)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus went away: read again from the last sequence
                log.warning("revocations: following the log failed (%s); retrying", exc)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)

    async def _read(self, nc: Client, js: JetStreamContext, stop: asyncio.Event) -> None:
        sub = await js.pull_subscribe(
            FILTER,
            None,
            stream=subjects.EVENTS_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.last_seq + 1,
                inactive_threshold=60,
            ),
        )
        reconnects = nc.stats["reconnects"]
        try:
            if (await sub.consumer_info()).num_pending == 0:
                self.caught_up.set()
            while not stop.is_set() and nc.stats["reconnects"] == reconnects:
                try:
                    msgs = await sub.fetch(100, timeout=1.0)
                except (NatsTimeout, TimeoutError):
                    self.caught_up.set()
                    continue
                for msg in msgs:
                    self.apply(msg.data)
                    self.last_seq = msg.metadata.sequence.stream
                if msgs and msgs[-1].metadata.num_pending == 0:
                    self.caught_up.set()
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be gone; the server drops the consumer
                pass
