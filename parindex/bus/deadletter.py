"""The dead-letter subject: a message a consumer cannot read, kept with the reason.

Operators read it back with `parindex deadletters list|show` and see the count on the admin
portal (docs/architecture.md, decision 17).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from contracts import subjects
from parindex.telemetry import metrics

log = logging.getLogger(__name__)


async def dead_letter(js: JetStreamContext, consumer: str, msg: Msg, reason: str) -> None:
    """Copy `msg` to par.dlq.<consumer>; the Msg-Id makes a redelivered copy a duplicate."""
    seq = msg.metadata.sequence.stream if msg.reply else 0
    headers = {
        "Nats-Msg-Id": f"dlq:{consumer}:{seq}:{msg.subject}",
        # A header is one line of valid UTF-8: the reason may quote the poison itself.
        "Parindex-Dlq-Reason": "".join(c if c.isprintable() else " " for c in reason[:1000]),
        "Parindex-Dlq-Consumer": consumer,
        "Parindex-Dlq-Subject": msg.subject,
        "Parindex-Dlq-Stream-Seq": str(seq),
    }
    log.warning("dead-lettered %s seq %s for %s: %s", msg.subject, seq, consumer, reason[:200])
    metrics.events_failed.labels(consumer).inc()
    await js.publish(
        subjects.dead_letter(consumer), msg.data, stream=subjects.DLQ_STREAM, headers=headers
    )


@dataclass(frozen=True)
class DeadLetter:
    """One message on the dead-letter stream, as an operator needs to see it."""

    seq: int  # in the dead-letter stream
    consumer: str
    reason: str
    subject: str  # the original subject
    stream_seq: int  # the original sequence in the events stream
    time: str | None
    data: bytes


def _as_dead_letter(raw: RawStreamMsg) -> DeadLetter:
    h = raw.headers or {}
    try:
        original = int(h.get("Parindex-Dlq-Stream-Seq", "0"))
    except ValueError:
        original = 0
    return DeadLetter(
        seq=int(raw.seq or 0),
        consumer=h.get("Parindex-Dlq-Consumer", ""),
        reason=h.get("Parindex-Dlq-Reason", ""),
        subject=h.get("Parindex-Dlq-Subject", raw.subject or ""),
        stream_seq=original,
        time=str(raw.time) if raw.time else None,
        data=raw.data or b"",
    )


async def dead_letter_count(js: JetStreamContext) -> int:
    """How many dead letters the stream holds (0 if it does not exist yet)."""
    try:
        info = await js.stream_info(subjects.DLQ_STREAM)
    except NotFoundError:
        return 0
    return int(info.state.messages)


async def dead_letter_at(js: JetStreamContext, seq: int) -> DeadLetter | None:
    try:
        return _as_dead_letter(await js.get_msg(subjects.DLQ_STREAM, seq))
    except NotFoundError:
        return None


async def dead_letters(
    js: JetStreamContext, *, limit: int = 100, consumer: str | None = None
) -> list[DeadLetter]:
    """The newest `limit` dead letters (of one consumer, if given), oldest first."""
    try:
        info = await js.stream_info(subjects.DLQ_STREAM)
    except NotFoundError:
        return []
    found: list[DeadLetter] = []
    seq = int(info.state.last_seq)
    first = int(info.state.first_seq or 1)
    while seq >= first and len(found) < limit:
        letter = await dead_letter_at(js, seq)
        seq -= 1
        if letter is not None and (consumer is None or letter.consumer == consumer):
            found.append(letter)
    return list(reversed(found))
