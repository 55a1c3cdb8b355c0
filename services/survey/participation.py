"""Who has a counted ballot, derived from the log when asked, never stored per person.

A ballot's subject ends in the keyed pseudonym, so JetStream's per-subject counts say which
pseudonyms have a ballot; only this service holds the key that maps respondents to pseudonyms.
A ballot counts only if it is sequenced before the campaign's DeadlineReached (the log decides:
docs/architecture.md, decision 15), the same rule scoring applies. Nothing here is written
anywhere: no flag, no time, no order of arrival (docs/architecture.md, decision 15).
"""

from __future__ import annotations

from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from services.survey.secrecy import pseudonym


async def deadline_seq(js: JetStreamContext, campaign_id: str) -> int | None:
    """Stream sequence of the campaign's DeadlineReached, or None while there is none."""
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.deadline(campaign_id))
    except NotFoundError:
        return None
    return int(msg.seq or 0)


async def counted(js: JetStreamContext, campaign_id: str, ballot_seq: int) -> bool:
    """True when a ballot at this stream sequence counts: no deadline on the log before it."""
    closed_at = await deadline_seq(js, campaign_id)
    return closed_at is None or ballot_seq < closed_at


async def ballot_pseudonyms(js: JetStreamContext, campaign_id: str) -> set[str]:
    """Pseudonyms with a ballot on the log (counted or not), from per-subject counts."""
    prefix = subjects.ballot(campaign_id, "")
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=prefix + "*")
    return {s[len(prefix) :] for s, n in (info.state.subjects or {}).items() if n}


async def voted(
    js: JetStreamContext, ballot_key: str, campaign_id: str, respondent_ids: Iterable[str]
) -> set[str]:
    """The respondents among `respondent_ids` whose ballot counts."""
    present = await ballot_pseudonyms(js, campaign_id)
    by_pseudo = {pseudonym(ballot_key, campaign_id, r): r for r in respondent_ids}
    found = {p: r for p, r in by_pseudo.items() if p in present}
    closed_at = await deadline_seq(js, campaign_id)
    if closed_at is None:
        return set(found.values())
    late = await late_pseudonyms(js, campaign_id, closed_at)
    return {r for p, r in found.items() if p not in late}


async def late_pseudonyms(js: JetStreamContext, campaign_id: str, closed_at: int) -> set[str]:
    """Pseudonyms whose ballot was sequenced after the deadline: one lookup per late ballot."""
    prefix = subjects.ballot(campaign_id, "")
    late: set[str] = set()
    seq = closed_at + 1
    while True:
        try:
            msg = await js.get_msg(subjects.EVENTS_STREAM, seq=seq, subject=prefix + "*", next=True)
        except NotFoundError:
            return late
        late.add(str(msg.subject)[len(prefix) :])
        seq = int(msg.seq or seq) + 1
