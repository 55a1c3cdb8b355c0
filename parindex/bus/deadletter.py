"""The dead-letter subject: a message a consumer cannot read, kept with the reason."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts import subjects

log = logging.getLogger(__name__)


async def dead_letter(js: JetStreamContext, consumer: str, msg: Msg, reason: str) -> None:
    """Copy `msg` to par.dlq.<consumer>; the Msg-Id makes a redelivered copy a duplicate."""
    seq = msg.metadata.sequence.stream if msg.reply else 0
    headers = {
        "Nats-Msg-Id": f"dlq:{consumer}:{seq}:{msg.subject}",
        "Parindex-Dlq-Reason": reason[:1000].replace("\r", " ").replace("\n", " "),
        "Parindex-Dlq-Consumer": consumer,
        "Parindex-Dlq-Subject": msg.subject,
        "Parindex-Dlq-Stream-Seq": str(seq),
    }
    log.warning("dead-lettered %s seq %s for %s: %s", msg.subject, seq, consumer, reason[:200])
    await js.publish(
        subjects.dead_letter(consumer), msg.data, stream=subjects.DLQ_STREAM, headers=headers
    )
