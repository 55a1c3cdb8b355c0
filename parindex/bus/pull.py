"""A pull consumer read in large batches through one callback subscription (catch-up reads).

nats-py's `fetch` takes each message with its own `next_msg`, which creates two asyncio tasks
per message: for a rebuild that costs as much as everything else it does with the message
(issue #18). Here the pull requests' replies arrive on one inbox subscription whose callback
only appends to a list, and the next request is sent as soon as a batch is handed out, so the
server streams the next batch while the caller applies this one. The consumer is the same
ephemeral AckNone pull consumer ProjectionRunner uses (docs/architecture.md, decisions 4 and
13): the read position stays in the database, and the inbox is the user's own
(`_INBOX_<user>.>`, decision 18).
"""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

STATUS = "Status"
HEARTBEAT = "100"
_ACK_TOKENS = (
    9  # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
)


LIVE_GATHER_S = 0.05  # how long a busy live read gathers events (decision 44)


async def live_fetch(sub: JetStreamContext.PullSubscription, batch: int, busy: bool) -> list[Msg]:
    """The next live events: one as soon as it comes when idle, up to `batch` gathered for
    LIVE_GATHER_S when the last read found some. Raises nats' or asyncio's TimeoutError when
    nothing came within a second (idle) or the gather (busy).

    nats-py's fetch of a batch waits until the batch is full or the request expires: with
    events arriving steadily every read took the whole second, so projections, the stage watch
    and the staff revocations all ran a second behind during a rush (issue #18, decision 44).
    """
    if busy:
        return await sub.fetch(batch, timeout=LIVE_GATHER_S)
    return await sub.fetch(1, timeout=1.0)


def stream_seq(msg: Msg) -> int:
    """A JetStream message's stream sequence, read from its reply subject alone.

    nats-py's `metadata` also builds a datetime and three dataclasses per message: a catch-up
    reads millions (docs/architecture.md, decision 43). Other reply forms (with a domain) take
    `metadata`.
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == _ACK_TOKENS and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5])
    return msg.metadata.sequence.stream


def pending(msg: Msg) -> int:
    """How many messages the consumer still held after this one, as stream_seq reads it."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == _ACK_TOKENS and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[8])
    return msg.metadata.num_pending


class BatchPull:
    """Ordered batches from `start_seq` on; `fetch` returns [] when the stream has no more
    (after `wait` idle, or at once with `no_wait`)."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        filter_subject: str,
        start_seq: int,
        batch: int,
        wait: float = 1.0,
        no_wait: bool = False,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.stream = stream
        self.filter_subject = filter_subject
        self.start_seq = start_seq
        self.batch = batch
        self.wait = wait
        # A catch-up reads what the stream already holds: a request ends with what is there
        # instead of waiting `wait` for messages that will not come (docs/architecture.md,
        # decision 43: that wait was the last second of every rebuild and audit).
        self.no_wait = no_wait
        self._msgs: list[Msg] = []
        self._owed = 0  # messages the outstanding request may still deliver
        self._done = asyncio.Event()  # the outstanding request is finished (all in, or a status)
        self._sub: Subscription | None = None
        self._next_subject = ""
        self._inbox = ""

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(
            self._inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        info = await self.js.add_consumer(
            self.stream,
            ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.start_seq,
                filter_subject=self.filter_subject,
                inactive_threshold=60,
            ),
        )
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{info.name}"

    async def _on_msg(self, msg: Msg) -> None:
        status = (msg.headers or {}).get(STATUS)
        if status is None:
            self._msgs.append(msg)
            self._owed -= 1
            if self._owed <= 0:
                self._done.set()
        elif status != HEARTBEAT:  # 404 no messages, 408 expired, 409 conflict: request over
            self._owed = 0
            self._done.set()

    async def _request(self) -> None:
        self._owed = self.batch
        self._done.clear()
        body: dict[str, int | bool] = {"batch": self.batch}
        if self.no_wait:
            body["no_wait"] = True
        else:
            body["expires"] = int(self.wait * 1_000_000_000)
        await self.nc.publish(self._next_subject, json.dumps(body).encode(), reply=self._inbox)

    async def fetch(self) -> list[Msg]:
        """The next messages in stream order (up to about two batches), [] after `wait` idle."""
        if self._owed <= 0 and not self._msgs:
            await self._request()
        if not self._msgs or self._owed > 0:
            try:
                await asyncio.wait_for(self._done.wait(), self.wait + 2)
            except TimeoutError:
                self._owed = 0  # the request is lost (a reconnect): the next fetch asks again
        msgs, self._msgs = self._msgs, []
        if msgs and self._owed <= 0:
            await self._request()  # the server streams the next batch while this one applies
        return msgs

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # the connection may be gone; the server drops the consumer
                pass
