"""Publishing events: wait for the ack, retry with the same Msg-Id, decide aggregates once.

docs/architecture.md, decision 2: a retried publish with an expected subject sequence may be
answered "wrong last sequence" (10071) because the first try did land. On that answer the
subject's last message is read and compared by event_id before a conflict is reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
from opentelemetry import trace

from contracts import subjects
from contracts.events import Envelope, encode
from parindex.telemetry.tracing import inject_trace

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parindex.bus")
WRONG_LAST_SEQUENCE = 10071
# "duplicate message id is in process": the first try is still being stored; ask again.
DUPLICATE_IN_PROCESS = 10158
# Transient answers during a leader election or restart (docs/architecture.md, decision 23).
TRANSIENT = (
    NatsTimeout,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
    TimeoutError,
    ConnectionError,
)


class PublishUnavailable(Exception):
    """The bus gave only transient answers for the whole retry budget: answer 503, not 500."""

    def __init__(self, subject: str, cause: Exception) -> None:
        super().__init__(f"publish to {subject} unavailable: {type(cause).__name__}")
        self.subject = subject
        self.cause = cause


class ConcurrencyConflict(Exception):
    """Another event already decided this aggregate (e.g. the respondent already voted)."""

    def __init__(self, subject: str, existing_event_id: str | None) -> None:
        super().__init__(f"{subject} already holds event {existing_event_id}")
        self.subject = subject
        self.existing_event_id = existing_event_id


@dataclass(frozen=True)
class Published:
    seq: int
    duplicate: bool


async def publish_event(
    js: JetStreamContext,
    subject: str,
    envelope: Envelope,
    *,
    expected_last_subject_seq: int | None = None,
    headers: Mapping[str, str] | None = None,
    budget: float = 10.0,
    timeout: float = 5.0,
) -> Published:
    """Publish and wait for the ack; safe to call again with the same envelope.

    Transient answers are retried with backoff for at most `budget` seconds in all, then
    raised as one PublishUnavailable.
    """
    with tracer.start_as_current_span(
        f"publish {envelope.type}", kind=trace.SpanKind.PRODUCER
    ) as span:
        span.set_attribute("messaging.destination.name", subject)
        span.set_attribute("parindex.event_id", envelope.event_id)
        carrier: dict[str, str] = {}
        # Consumers continue this trace (docs/architecture.md, decision 11).
        inject_trace(carrier)
        merged = dict(headers or {}) | carrier
        published = await _publish(
            js, subject, envelope, expected_last_subject_seq, merged, budget, timeout
        )
        span.set_attribute("messaging.nats.stream_sequence", published.seq)
        return published


async def _publish(
    js: JetStreamContext,
    subject: str,
    envelope: Envelope,
    expected_last_subject_seq: int | None,
    headers: Mapping[str, str],
    budget: float,
    timeout: float,
) -> Published:
    hdrs = {"Nats-Msg-Id": envelope.event_id, "Parindex-Type": envelope.type}
    if headers:
        hdrs.update(headers)
    if expected_last_subject_seq is not None:
        hdrs["Nats-Expected-Last-Subject-Sequence"] = str(expected_last_subject_seq)
    body = encode(envelope)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    delay = 0.1
    attempt = 0
    while True:
        attempt += 1
        left = deadline - loop.time()
        try:
            ack = await js.publish(
                subject,
                body,
                timeout=max(0.05, min(timeout, left)),
                stream=subjects.EVENTS_STREAM,
                headers=hdrs,
            )
            return Published(seq=ack.seq, duplicate=bool(ack.duplicate))
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                existing = await last_on_subject(js, subject)
                if existing is not None and existing[1] == envelope.event_id:
                    return Published(seq=existing[0], duplicate=True)
                raise ConcurrencyConflict(subject, existing[1] if existing else None) from exc
            if not _transient(exc):
                raise
            err: Exception = exc
        except TRANSIENT as exc:
            err = exc
        if loop.time() + delay >= deadline:
            raise PublishUnavailable(subject, err) from err
        # The subject's kind only: a ballot subject ends in a pseudonym, and a timed log line
        # naming it would be a per-person trail (docs/architecture.md, decision 15).
        log.warning(
            "publish of %s failed (%s), retry %d", envelope.type, type(err).__name__, attempt
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def _transient(exc: APIError) -> bool:
    """An API answer worth asking again: in-process duplicate, timeout or 5xx."""
    if isinstance(exc, TRANSIENT) or exc.err_code == DUPLICATE_IN_PROCESS:
        return True
    return exc.code is None or exc.code == 408 or exc.code >= 500


async def last_on_subject(js: JetStreamContext, subject: str) -> tuple[int, str] | None:
    """(sequence, event_id) of the subject's last message, or None if it has none."""
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subject)
    except NotFoundError:
        return None
    event_id = (msg.headers or {}).get("Nats-Msg-Id", "")
    assert msg.seq is not None  # a stored message always has its sequence
    return msg.seq, event_id
