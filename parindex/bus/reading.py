"""One way to read an event off the log: decoded, and on its own subject (decision 47).

The projections dead-letter what this refuses; the in-memory followers skip it. Both ask here,
so the two can never disagree about which events are facts.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts import subjects
from contracts.events import BallotFields, Envelope, EventError, Payload, decode

Decoder = Callable[[bytes, str | None], tuple[Envelope, Payload | BallotFields]]


def read_event(
    raw: bytes,
    subject: str | None,
    type_hint: str | None = None,
    decoder: Decoder = decode,
) -> tuple[Envelope, Payload | BallotFields]:
    """The event, or EventError saying why it is no fact: unreadable, or read from a subject
    that is not its type's own (`subject` None: not checked, for raw reads by sequence)."""
    env, payload = decoder(raw, type_hint)
    if subject is not None:
        wrong = subjects.misplaced(subject, env.type, env.campaign_id)
        if wrong is not None:
            raise EventError(wrong)
    return env, payload
